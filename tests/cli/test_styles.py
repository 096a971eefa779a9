"""Each codebase's style: found by --api auto from names and signatures, driven end to
end on the fixtures that follow those codebases' conventions -- no false alarm on equal
shards with head-like logits, the uneven-shard bugs found as distributed ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import TargetError
from harness.targets import load_target
from tests.cli.test_cli import FIXTURES, ROOT, harness

STYLES = FIXTURES / "styles"
TARGETS = {  # a target following each codebase's conventions -> the style auto must pick
    "harness.losses": "seed",
    str(STYLES / "stable_pretraining" / "losses" / "dino.py"): "seed",  # relative imports
    "dinov2.loss": "dinov2",
    str(STYLES / "dinov3" / "loss" / "__init__.py"): "dinov3",
    str(STYLES / "main_dino.py"): "dino",
    str(STYLES / "lightly" / "loss" / "dino_loss.py"): "lightly",
    str(STYLES / "solo_dino.py"): "solo",
    str(STYLES / "main_dino.py") + ":DINOLoss": "dino",  # module:attribute
}


@pytest.mark.parametrize("impl,style", list(TARGETS.items()), ids=list(TARGETS.values()))
def test_auto_picks_the_codebase_style(impl: str, style: str) -> None:
    if impl == "dinov2.loss":
        pytest.importorskip("dinov2.loss")
    target = load_target(impl)
    assert target.spec.api == style
    assert target.choice.startswith(f"style {style} (--api auto; {style}: found ")


def test_a_target_that_fits_no_style_says_what_was_looked_for() -> None:
    with pytest.raises(TargetError) as info:
        load_target(str(FIXTURES / "partial_target.py"))
    text = str(info.value)
    assert "fits no API style" in text
    for style in ("seed", "dinov2", "dinov3", "dino", "lightly", "solo"):
        assert f"  - {style}: " in text
    assert "lacks DINOLoss" in text and "--adapter" in text


def test_a_named_style_that_does_not_fit_is_bad_input() -> None:
    proc = harness("run", "--impl", str(STYLES / "main_dino.py"), "--api", "lightly")
    assert proc.returncode == 2
    assert "does not fit the lightly style" in proc.stderr and "lacks" in proc.stderr


def run_style(tmp_path: Path, impl: str, *args: str) -> tuple[int, dict[tuple[str, int], dict]]:
    out = tmp_path / "out.json"
    proc = harness("run", "--impl", impl, "--report-dir", str(tmp_path / "r"), "--json", str(out),
                   *args, timeout=600)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    return proc.returncode, {(r["case"], r["world_size"]): r for r in data["results"]}


FORWARD_CENTERED = {"dino": "main_dino.py", "lightly": "lightly/loss/dino_loss.py",
                    "solo": "solo_dino.py"}


@pytest.mark.parametrize("style", list(FORWARD_CENTERED))
def test_centering_inside_forward_styles(tmp_path: Path, style: str) -> None:
    code, results = run_style(tmp_path, str(STYLES / FORWARD_CENTERED[style]),
                              "--world-sizes", "2", "--filter", "-")
    assert code == 1
    assert not [k for k, r in results.items() if r["status"] == "error"]
    for (case, _), r in results.items():
        if "equal" in case and "micro" not in case and r["status"] != "skip":
            assert r["status"] == "pass", (case, r["checks"])
    assert results[("centering-equal-shards", 2)]["status"] == "pass"
    # A center updated inside forward steps its EMA at every micro-batch, equal ones too
    # (lightly-train issue 968): a distributed failure, named.
    micro = results[("centering-micro-equal", 2)]
    assert micro["status"] == "fail"
    assert {c["category"] for c in micro["checks"] if not c["passed"]} == {"distributed"}
    assert micro["mistakes"] == ["center_ema_per_micro_batch"], micro["diagnosis"]
    uneven = results[("centering-uneven-shards", 2)]
    assert uneven["status"] == "fail"
    assert {c["category"] for c in uneven["checks"] if not c["passed"]} == {"distributed"}
    no_sinkhorn = results[("sinkhorn-equal-shards", 2)]
    assert no_sinkhorn["status"] == "skip" and "lack sinkhorn_knopp" in no_sinkhorn["skip_reason"]


def test_the_readme_adapter_is_the_tested_one(tmp_path: Path) -> None:
    adapter = FIXTURES / "mylab_style.py"
    assert adapter.read_text().strip() in (ROOT / "README.md").read_text()
    assert len(adapter.read_text().splitlines()) < 40
    code, results = run_style(tmp_path, str(FIXTURES / "mylab_losses.py"), "--adapter",
                              str(adapter), "--world-sizes", "1,2", "--cases",
                              str(ROOT / "cases" / "correctness" / "centering.toml"))
    assert code == 0
    assert {r["status"] for r in results.values()} <= {"pass", "skip"}
    assert results[("centering-uneven-shards", 2)]["status"] == "pass"  # mylab is exact


def test_an_adapter_without_a_style_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad_style.py"
    bad.write_text("X = 1\n")
    proc = harness("run", "--impl", "harness.losses", "--adapter", str(bad))
    assert proc.returncode == 2 and "defines no STYLE" in proc.stderr


def test_lightly_masked_ibot(tmp_path: Path) -> None:
    """lightly.loss's IBOTPatchLoss (per-image weights, centering inside forward) through
    the ibot_masked kind: right on equal images per rank, distributed bug on uneven."""
    code, results = run_style(tmp_path, str(STYLES / "lightly" / "loss" / "__init__.py"),
                              "--world-sizes", "2", "--filter", "ibot_masked-")
    assert code == 1
    assert results[("ibot_masked-equal-images-softmax", 2)]["status"] == "pass"
    uneven = results[("ibot_masked-uneven-images-softmax", 2)]
    assert uneven["status"] == "fail"
    assert {c["category"] for c in uneven["checks"] if not c["passed"]} == {"distributed"}
    assert "needs iBOTMaskedPatchLoss.sinkhorn_knopp_teacher" in \
        results[("ibot_masked-equal-images", 2)]["skip_reason"]
