"""A planted fault is caught only by a failing check, or by the hang or crash it causes."""

from harness.faults import FAULTS, catches


def test_a_check_fault_needs_a_failing_check():
    fault = FAULTS["center_mean_of_means"]
    assert catches(fault, "fail", None, failing_checks=1)
    assert not catches(fault, "fail", "raised", failing_checks=0)  # the fault raised
    assert not catches(fault, "error", "crash", failing_checks=0)  # unrelated crash
    assert not catches(fault, "pass", None, failing_checks=0)


def test_a_hang_fault_needs_its_hang():
    fault = FAULTS["sinkhorn_empty_rank_returns_early"]
    assert catches(fault, "error", "hang", failing_checks=0)
    assert not catches(fault, "error", "crash", failing_checks=0)
    assert not catches(fault, "fail", "raised", failing_checks=0)
    assert not catches(fault, "fail", None, failing_checks=2)


def test_every_fault_binds_its_variant_on_every_loss_of_its_namespace():
    import importlib

    from harness.faults import module_name
    from harness.losses.variants import Variant

    for name, fault in FAULTS.items():
        module = importlib.import_module(module_name(name))
        losses = {attr: obj for attr, obj in vars(module).items()
                  if isinstance(getattr(obj, "variant", None), Variant)}
        assert {"DINOv1Loss", "iBOTPatchLoss", "DINOv2Loss", "iBOTMaskedPatchLoss",
                "iBOTPatchCenter"} <= set(losses), name
        assert all(obj.variant == fault.variant for obj in losses.values()), name


def test_every_fault_hands_the_step_kind_the_reference_step_with_its_variant():
    import importlib

    from harness.faults import module_name
    from harness.losses.step import dino_step
    from harness.targets import STEP_ATTRIBUTE

    for name, fault in FAULTS.items():
        step = getattr(importlib.import_module(module_name(name)), STEP_ATTRIBUTE)
        assert step.func is dino_step and step.keywords == {"variant": fault.variant}, name
