"""The issue's CLI conventions and their neighbours: the digits file shipped in the package, --version,
--quiet/--verbose, exit codes, help text, find-lr's run folder, predict --csv and in-memory images, TensorBoard."""

import hashlib

from imgclf.data import load_dataset
from imgclf.data.digits import digits_file

# sha256 over the train images, train labels, test images and test labels (in that order) as loaded from
# scikit-learn's copy of digits.csv.gz, computed before the file moved into this package
DIGITS_SHA256 = "eaa9834de03c5a5ab5b2e0d1d7b16b2f02b453c1871a3a71f8b2a016964dfb4d"


def test_digits_ship_inside_the_package_and_load_bit_identical_to_before():
    path = digits_file()
    assert path.name == "digits.csv.gz" and path.parent.name == "data"
    assert path.parent.joinpath("DIGITS_LICENSE.txt").read_text().count("10.24432/C50P49") == 1
    ds = load_dataset("digits")
    h = hashlib.sha256()
    for split in (ds.train, ds.test):
        h.update(split.images.numpy().tobytes())
        h.update(split.labels.numpy().tobytes())
    assert h.hexdigest() == DIGITS_SHA256
    assert ds.train.images.shape == (1437, 1, 8, 8) and ds.test.images.shape == (360, 1, 8, 8)
