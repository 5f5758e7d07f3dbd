"""`python -m sealserve`: the same command line as the `sealserve` script."""

from sealserve.cli.main import main

if __name__ == "__main__":
    main()
