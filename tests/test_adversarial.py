"""Adversarial inputs end to end through the `imgclf` command, one test per case (tests/adversarial_data.py and
tests/adversarial_commands.py): a case passes unless its outcome is a traceback, silent wrong, run overwritten,
unclear error or refused (tests/adversarial.py says what each means); a case marked xfail (a defect imgclf still
has) is a strict xfail. ADVERSARIAL_ALL=1 adds each case's variants. About 5 minutes on 2 CPU cores."""

import os

import pytest
from adversarial import FAILING, Ctx, SharedRuns, make_writable, run_case, select

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def shared_runs(tmp_path_factory) -> SharedRuns:
    """The tiny digits run many cases copy and edit: trained once per session, when a case first needs it."""
    return SharedRuns(tmp_path_factory.mktemp("shared-runs"))


def _param(case):
    """A case, as a strict xfail when imgclf still has its defect (the case's xfail says what it does instead)."""
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in select(everything=os.environ.get("ADVERSARIAL_ALL") == "1")])
def test_case(case, tmp_path, tmp_path_factory, shared_runs):
    ctx = Ctx(tmp_path, shared_runs)
    try:
        outcome, reason = run_case(case, ctx, relative_to=(tmp_path_factory.getbasetemp(),))
    finally:
        make_writable(tmp_path, ctx.cache)
    assert outcome not in FAILING, f"{outcome}: {reason}\nrequired: {case.what}"
