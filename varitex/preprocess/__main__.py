"""``python -m varitex.preprocess``: the same as ``varitex-preprocess``."""
from varitex.preprocess.cli import main

main()
