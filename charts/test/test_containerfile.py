"""Checks of the Containerfile that need no container engine (none runs here):
it builds what ./scripts/static-build builds and tests, and its image runs as
the user the chart expects. ./scripts/static-build runs the build itself."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD = "swift build -c release --static-swift-stdlib --product isthmus"


def containerfile() -> str:
    return (ROOT / "Containerfile").read_text()


def test_the_image_builds_and_smoke_tests_what_the_static_build_script_does():
    script = (ROOT / "scripts" / "static-build").read_text()
    assert BUILD in containerfile() and BUILD in script
    for check in ["--version", "policy check policies/", "policy check policies/strict/"]:
        assert f"isthmus {check}" in containerfile(), check
        assert f'"$bin" {check}' in script, check


def test_build_and_runtime_share_a_debian_release():
    stages = re.findall(r"^FROM (\S+)", containerfile(), re.M)
    assert len(stages) == 2, stages
    build, runtime = stages
    assert "-bookworm" in build, build
    assert runtime.startswith("gcr.io/distroless/cc-debian12"), "bookworm is Debian 12: same glibc"


def test_the_image_runs_as_the_chart_user_without_root():
    user = re.findall(r"^USER (\d+):(\d+)$", containerfile(), re.M)
    values = yaml.safe_load((ROOT / "charts" / "isthmus" / "values.yaml").read_text())
    assert user == [(str(values["podSecurityContext"]["runAsUser"]), str(values["podSecurityContext"]["runAsGroup"]))]
    assert user[0][0] != "0"
    assert 'ENTRYPOINT ["/usr/local/bin/isthmus"]' in containerfile()


def test_the_build_context_leaves_out_build_products():
    for ignore in [".containerignore", ".dockerignore"]:
        lines = (ROOT / ignore).read_text().splitlines()
        assert ".build*" in lines and ".git" in lines, ignore
