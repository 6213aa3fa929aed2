import json
import warnings

import pytest
import torch

from livestyle import Catalog, choose_model, load_model_file, save_model_file, sr_net, transform_net
from livestyle.errors import UnknownModelError, WeightsError


def make_catalog(folder, entries):
    (folder / "catalog.json").write_text(json.dumps({"models": entries}))
    return Catalog(folder)


@pytest.fixture
def catalog(tmp_path):
    torch.manual_seed(0)
    sha_style = save_model_file(transform_net(width=4, blocks=1), tmp_path / "mosaic.safetensors")
    sha_sr = save_model_file(sr_net(scale=4, width=4, blocks=1), tmp_path / "sr_x4.safetensors")
    return make_catalog(tmp_path, [
        {"name": "mosaic", "task": "style", "arch": {"width": 4, "blocks": 1}, "file": "mosaic.safetensors",
         "sha256": sha_style, "credit": "test", "licence": "test"},
        {"name": "sr_x4", "task": "superres", "arch": {"scale": 4, "width": 4, "blocks": 1},
         "file": "sr_x4.safetensors", "sha256": sha_sr},
    ])


def test_load_by_name_and_scale(catalog):
    style = choose_model(style="mosaic", catalog=catalog)
    assert style.task == "style" and style.scale == 1 and style.name == "mosaic"
    sr = choose_model(superres=4, catalog=catalog)
    assert sr.task == "superres" and sr.scale == 4


def test_superres_by_name_and_the_scale_default(tmp_path):
    # two ×4 models: --superres 4 means the one named x4 wherever it sits; another is chosen by name
    torch.manual_seed(0)
    models = {name: sr_net(scale=4, width=4, blocks=1) for name in ("x4_feat", "x4")}
    entries = [{"name": name, "task": "superres", "arch": model.config.to_dict(), "file": f"{name}.safetensors",
                "sha256": save_model_file(model, tmp_path / f"{name}.safetensors")} for name, model in models.items()]
    catalog = make_catalog(tmp_path, entries)
    assert choose_model(superres=4, catalog=catalog).name == "x4"
    feat = choose_model(superres="x4_feat", catalog=catalog)
    assert feat.name == "x4_feat" and feat.task == "superres" and feat.scale == 4
    expected = models["x4_feat"].state_dict()
    assert all(torch.equal(t, expected[k]) for k, t in feat.model.state_dict().items())
    with pytest.raises(UnknownModelError, match="unknown model 'x5'; known: x4_feat, x4"):
        choose_model(superres="x5", catalog=catalog)


def test_unknown_style_lists_known(catalog):
    with pytest.raises(UnknownModelError, match="known: mosaic"):
        choose_model(style="starry", catalog=catalog)
    with pytest.raises(UnknownModelError, match="×8"):
        choose_model(superres=8, catalog=catalog)


def test_tampered_file_fails_sha256(catalog):
    path = catalog.folder / "mosaic.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        choose_model(style="mosaic", catalog=catalog)


def test_missing_file_and_bad_record(tmp_path):
    cat = make_catalog(tmp_path, [{"name": "x", "task": "style", "arch": {}, "file": "x.safetensors", "sha256": "0"}])
    with pytest.raises(WeightsError, match="missing"):
        cat.load(cat.get("x"))
    with pytest.raises(WeightsError, match="lacks"):
        make_catalog(tmp_path, [{"name": "y", "task": "style"}])


def test_empty_catalog_says_so(tmp_path):
    with pytest.raises(UnknownModelError, match="no trained models are installed"):
        Catalog(tmp_path).get("kandinsky", task="style")


def test_model_file_round_trip(tmp_path):
    net = transform_net(width=4, blocks=2)
    save_model_file(net, tmp_path / "m.safetensors")
    loaded, meta = load_model_file(tmp_path / "m.safetensors")
    assert meta["livestyle.task"] == "style"
    for (k, a), b in zip(net.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k


def test_non_livestyle_files_rejected(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WeightsError, match="not a livestyle model"):
        load_model_file(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(WeightsError, match="not a readable"):
        load_model_file(tmp_path / "junk.safetensors")


def test_shipped_catalog_is_consistent():
    """Every entry of weights/catalog.json has its file, its sha256 matches, and it loads."""
    catalog = Catalog()
    for entry in catalog.entries.values():
        assert entry.credit and entry.licence and entry.recipe, entry.name
        model = catalog.load(entry)
        assert model(torch.rand(1, 3, 16, 16)).shape[-1] == 16 * entry.arch.get("scale", 1)


def test_plain_style_name_falls_back_to_its_small_variant(tmp_path):
    sha = save_model_file(transform_net(width=4, blocks=1), tmp_path / "wave_small.safetensors")
    catalog = make_catalog(tmp_path, [{"name": "wave_small", "task": "style", "arch": {"width": 4, "blocks": 1},
                                       "file": "wave_small.safetensors", "sha256": sha, "variant": "small"}])
    with pytest.warns(UserWarning, match="no full model of 'wave' is installed; running wave_small"):
        assert choose_model(style="wave", catalog=catalog).name == "wave_small"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # asked for by its own name, or for the variant there is: no warning
        assert choose_model(style="wave_small", catalog=catalog).name == "wave_small"
        assert choose_model(style="wave", catalog=catalog, variant="small").name == "wave_small"
    with pytest.raises(UnknownModelError, match=r"^unknown style 'wav'; did you mean 'wave'\? known: wave$"):
        choose_model(style="wav", catalog=catalog)


def test_unknown_names_list_plain_names_and_suggest_close_ones(full_and_small):
    """The README writes `--style wave`: the listing says wave once (not wave, wave_small), and a typo
    gets the name it was probably meant to be; a name like none of them gets the list alone."""
    catalog = full_and_small
    assert catalog.plain_names("style") == ["wave", "mosaic"]
    with pytest.raises(UnknownModelError) as typo:
        catalog.get("wavve", "style")
    assert str(typo.value) == "unknown style 'wavve'; did you mean 'wave'? known: wave, mosaic"
    with pytest.raises(UnknownModelError) as typo:
        catalog.get("mosiac_small", "style", variant="small")
    assert str(typo.value) == "unknown style 'mosiac_small'; did you mean 'mosaic'? known: wave, mosaic"
    with pytest.raises(UnknownModelError) as typo:
        catalog.get("wavee_small", "style")
    assert str(typo.value) == "unknown style 'wavee_small'; did you mean 'wave_small'? known: wave, mosaic"
    with pytest.raises(UnknownModelError) as other:
        catalog.get("picasso", "style")
    assert str(other.value) == "unknown style 'picasso'; known: wave, mosaic"


@pytest.fixture
def full_and_small(tmp_path):
    """A catalog holding wave (full), wave_small and mosaic (full only)."""
    records = []
    for name, width, variant in (("wave", 8, "full"), ("wave_small", 4, "small"), ("mosaic", 4, "full")):
        sha = save_model_file(transform_net(width=width, blocks=1), tmp_path / f"{name}.safetensors")
        records.append({"name": name, "task": "style", "arch": {"width": width, "blocks": 1},
                        "file": f"{name}.safetensors", "sha256": sha, "variant": variant})
    return make_catalog(tmp_path, records)


def test_plain_style_name_means_the_variant_asked_for(full_and_small):
    catalog = full_and_small
    assert choose_model(style="wave", catalog=catalog).name == "wave"
    assert choose_model(style="wave", catalog=catalog, variant="small").name == "wave_small"
    assert choose_model(style="wave_small", catalog=catalog, variant="full").name == "wave_small"  # exact names win
    assert choose_model(style="mosaic", catalog=catalog, variant="small").name == "mosaic"  # no small one: the full
    assert catalog.style_names("full") == ["wave", "mosaic"]
    assert catalog.style_names("small") == ["wave_small", "mosaic"]
    with pytest.raises(UnknownModelError, match="unknown model variant 'tiny'"):
        catalog.get("wave", variant="tiny")


def test_model_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    path = tmp_path / "m.safetensors"
    save_model_file(transform_net(width=2, blocks=0), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)  # not owner-only
    model, meta = load_model_file(path)
    assert meta["livestyle.task"] == "style" and model.config.width == 2


@pytest.mark.parametrize("text", ['{"models": "x"}', "[1, 2]", '{"models": [1]}', '{"models": [["name"]]}',
                                  '{"models": [{"name": "a", "task": "style", "arch": [], "file": "a", "sha256": "0"}]}',
                                  '{"models": [{"name": ["a"], "task": "style", "arch": {}, "file": "a", "sha256": "0"}]}',
                                  "{not json"])
def test_malformed_catalog_is_a_one_line_weights_error(tmp_path, monkeypatch, text):
    from click.testing import CliRunner

    from livestyle.cli import main

    (tmp_path / "catalog.json").write_text(text)
    with pytest.raises(WeightsError, match="catalog.json"):
        Catalog(tmp_path)
    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["styles"])
    assert result.exit_code == 1 and "catalog.json is not valid" in result.output
    assert result.output.count("\n") == 1 and not isinstance(result.exception, (TypeError, AttributeError))


@pytest.mark.parametrize("text", ['{"models": "x"}', "[1, 2]", '{"models": [1]}', "{not json"])
def test_add_catalog_entry_checks_the_catalog_before_copying_the_model(tmp_path, text):
    from livestyle.errors import WeightsError
    from livestyle.zoo.catalog import add_entry

    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "catalog.json").write_text(text)
    model = tmp_path / "new.safetensors"
    save_model_file(transform_net(width=2, blocks=0), model)
    entry = {"name": "new", "task": "style", "arch": {"width": 2, "blocks": 0}, "file": "new.safetensors",
             "sha256": "0"}
    with pytest.raises(WeightsError, match="catalog.json"):
        add_entry(folder, entry, model)
    assert sorted(p.name for p in folder.iterdir()) == ["catalog.json"]  # no stray copy
    assert (folder / "catalog.json").read_text() == text


def test_a_weights_folder_variable_naming_no_folder_is_an_error(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from livestyle.cli import main

    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(tmp_path / "typo"))
    result = CliRunner().invoke(main, ["styles"])
    assert result.exit_code == 1
    assert result.output.strip() == f"livestyle: error: $LIVESTYLE_WEIGHTS_DIR is {tmp_path / 'typo'}, which is not a folder"
    monkeypatch.setenv("LIVESTYLE_WEIGHTS_DIR", str(tmp_path))  # a folder without a catalog: an empty install
    assert CliRunner().invoke(main, ["styles"]).exit_code == 0
