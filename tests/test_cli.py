"""The command line as a whole: a start that does not wait for torch, shared options, old spellings."""
import subprocess
import sys

import pytest
from click.testing import CliRunner

from livestyle.cli import main

# Runs the command line, then says which heavy modules it had loaded.
LOADED_AFTER = """
import sys
from livestyle.cli import main
try:
    main()
except SystemExit:
    pass
print(sorted(m for m in ("torch", "torchvision", "onnx", "onnxruntime", "cv2", "av") if m in sys.modules))
"""


@pytest.mark.parametrize("args", [["--help"], ["video", "--help"], ["bench", "--help"], ["styles"],
                                  ["video", "in.mp4", "-o", "out.mp4", "--backend", "nope"]])
def test_help_listing_and_usage_errors_load_no_torch(args):
    """`livestyle --help` took seconds because the CLI imported torch before it parsed anything."""
    process = subprocess.run([sys.executable, "-c", LOADED_AFTER, *args], capture_output=True, text=True, timeout=60)
    assert process.stdout.strip().splitlines()[-1] == "[]", process.stdout + process.stderr


def test_bench_old_spellings_reach_the_subcommands():
    runner = CliRunner()
    engines = runner.invoke(main, ["bench", "--engines", "--help"])
    paper = runner.invoke(main, ["bench", "--help"])
    assert engines.exit_code == 0 and "--extra" in engines.output
    assert paper.exit_code == 0 and "paper" in paper.output and "engines" in paper.output


def test_fp16_contradicting_precision_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["image", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"),
                                       "--style", "x", "--fp16", "--precision", "fp32", "--device", "cpu"])
    assert result.exit_code == 2 and "--fp16 means --precision bf16 here" in result.output
