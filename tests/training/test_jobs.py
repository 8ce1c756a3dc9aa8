"""Training jobs: de-duplication, and how a job reports progress in a worker."""

from v2xsim.progress import report, report_every_s
from v2xsim.training.jobs import job, run_job, unique_jobs


def _talk(text: str) -> None:
    report(text)
    assert report_every_s(2.0) >= 10.0  # fewer, whole lines when several jobs share stderr


def test_equal_keys_are_one_job_in_first_seen_order():
    jobs = [job("a", "k1", print, 1), job("b", "k2", print, 2), job("a again", "k1", print, 3)]
    assert [j.label for j in unique_jobs(jobs)] == ["a", "b"]


def test_a_job_in_line_mode_writes_whole_lines(capsys):
    assert run_job(job("talk", "key", _talk, "epoch 1/2"), quiet=False, lines=True) == "key"
    assert capsys.readouterr().err == "epoch 1/2\n"
    report("step 1")  # outside line mode: overwrites the current line
    assert capsys.readouterr().err == "\rstep 1"
    assert report_every_s(2.0) == 2.0
