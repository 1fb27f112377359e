"""lab.py forgets the cached facts of a host whose container it creates anew."""

import importlib.util
from pathlib import Path

import pytest

LAB_SCRIPT = Path(__file__).resolve().parents[3] / "scripts/lab/lab.py"


@pytest.fixture(scope="module")
def lab_module():
    spec = importlib.util.spec_from_file_location("nospof_lab_script", LAB_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fact_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(tmp_path))
    monkeypatch.delenv("ANSIBLE_CACHE_PLUGIN_PREFIX", raising=False)
    return tmp_path


def cached(directory, *names):
    for name in names:
        (directory / name).write_text("{}")


def test_forgets_the_schema_named_and_the_bare_file_of_that_host_only(lab_module, fact_cache):
    cached(fact_cache, "s1_web1", "s2_web1", "web1", "s1_web10", "s1_db1", "xs1_web1", "s1_web1.bak")
    lab_module.Lab.forget_facts(None, "web1")
    assert sorted(path.name for path in fact_cache.iterdir()) == ["s1_db1", "s1_web1.bak", "s1_web10", "xs1_web1"]


def test_honours_a_fact_caching_prefix(lab_module, fact_cache, monkeypatch):
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN_PREFIX", "lab-")
    cached(fact_cache, "lab-s1_web1", "s1_web1", "lab-s1_web2")
    lab_module.Lab.forget_facts(None, "web1")
    assert sorted(path.name for path in fact_cache.iterdir()) == ["lab-s1_web2", "s1_web1"]


def test_a_missing_cache_directory_is_no_error(lab_module, tmp_path, monkeypatch):
    monkeypatch.setenv("ANSIBLE_CACHE_PLUGIN_CONNECTION", str(tmp_path / "absent"))
    lab_module.Lab.forget_facts(None, "web1")
