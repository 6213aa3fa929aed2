"""`python -m livestyle …`: the command line, as torchrun starts it on each process
(`torchrun --nproc_per_node N -m livestyle train style …`)."""
from livestyle.cli import main

if __name__ == "__main__":
    main(prog_name="livestyle")
