"""docs/python.md runs as written: its Python blocks, in order and in one namespace, on the real
ml-latest-small, and the output the page quotes is what they print (the temporal evaluation of
section 7 included)."""

import re
from pathlib import Path

import pytest
import torch

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.slow
@pytest.mark.realdata
def test_the_python_tutorial_runs_as_written(data_dir, tmp_path, monkeypatch, capsys):
    pytest.importorskip("pandas")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "ml-latest-small").symlink_to(data_dir / "ml-latest-small")
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two shared cores: steadier with one
    monkeypatch.setenv("BERT4REC_THREADS", "1")  # which Model keeps (training/threads.py)
    namespace: dict = {}
    text = DOC.read_text()
    try:
        for number, block in enumerate(python_blocks(text)):
            exec(compile(block, f"{DOC.name}, python block {number + 1}", "exec"), namespace)
    finally:
        torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    for quoted in re.findall(r"prints `(.*?)`", text, re.S):  # what the page says is printed
        assert words(quoted) in words(printed)
    model = namespace["model"]
    assert (tmp_path / "runs" / "ml-latest-small" / "users.parquet").is_file()
    assert model.metrics["test"]["protocol"] == "full"
    assert namespace["sampled"]["protocol"] == "sampled"
    assert namespace["recs"]["title"].to_list()  # the last recommendations: itemknn's
    pd = pytest.importorskip("pandas")
    assert isinstance(namespace["recs"], pd.DataFrame)  # pandas in, pandas out
    report = namespace["report"]  # section 7: the temporal split, itemknn's report
    assert report["protocol"] == "held-out frame" and report["users"] > 0
    assert namespace["bert"].evaluate(test=namespace["liked"], ks=(10,))["users"] == \
        report["users"]
