"""The shared validators of ``dltheory._checks`` and the one message format.

Format: ``"<name> must be <constraint>. Got <value!r>. <How to fix>."``
"""

from __future__ import annotations

import fractions

import numpy as np
import pytest
import torch
from torch import nn

from dltheory._checks import (
    as_float_tensor,
    check_choice,
    check_int,
    check_nonnegative,
    check_positive,
    check_real,
    message,
)

# message ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("depth", "an integer >= 1", 0), "depth must be an integer >= 1. Got 0."),
        (
            ("c_w", "a variance >= 0", -1.0, "Variances cannot be negative"),
            "c_w must be a variance >= 0. Got -1.0. Variances cannot be negative.",
        ),
        (
            ("name", "a string", "relu", "Pass a name."),
            "name must be a string. Got 'relu'. Pass a name.",
        ),
        (("x", "finite", float("inf"), "Drop them..."), "x must be finite. Got inf. Drop them."),
    ],
)
def test_message_exact_text(args, expected):
    assert message(*args) == expected


def test_message_truncates_long_values_to_80_characters():
    text = message("x", "short", "a" * 200)
    got = text.split("Got ", 1)[1].rsplit(".", 1)[0]
    assert len(got) == 80
    assert got == "'" + "a" * 76 + "..."


def test_message_is_one_line_for_values_with_multiline_reprs():
    # repr of an nn.Module spans lines; an error message must not.
    model = nn.Sequential(nn.ReLU(), nn.Tanh())
    assert "\n" in repr(model)
    text = message("model", "a Sequential with at least one Linear layer", model)
    assert "\n" not in text
    assert text.startswith("model must be a Sequential with at least one Linear layer. Got ")


def test_message_keeps_a_question_as_the_last_sentence():
    # The registry's hint "Did you mean relu?" must not end as "relu?.".
    assert message("activation", "a known name", "rellu", "Did you mean relu?") == (
        "activation must be a known name. Got 'rellu'. Did you mean relu?"
    )


# check_real / check_nonnegative / check_positive -----------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3.0),
        (-2, -2.0),
        (0.25, 0.25),
        (np.float32(0.5), 0.5),
        (np.int64(7), 7.0),
        (fractions.Fraction(1, 4), 0.25),
    ],
)
def test_check_real_converts_to_float(value, expected):
    out = check_real("c_w", value)
    assert type(out) is float
    assert out == expected


@pytest.mark.parametrize(
    "value", [True, False, np.bool_(True), "1.0", None, 1 + 0j, torch.tensor(1.0), [1.0]]
)
def test_check_real_refuses_non_reals(value):
    with pytest.raises(TypeError) as info:
        check_real("c_w", value)
    assert str(info.value) == f"c_w must be a real number. Got {value!r}."


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), np.float64("inf")])
def test_check_real_refuses_non_finite(value):
    with pytest.raises(ValueError, match=r"^c_b must be finite\. Got (nan|inf|-inf)\.$"):
        check_real("c_b", value)


@pytest.mark.parametrize("value", [10**400, -(10**400)], ids=["1e400", "-1e400"])
def test_check_real_refuses_integers_beyond_float_range(value):
    # float(10**400) raises OverflowError; the validator must say what is wrong.
    with pytest.raises(ValueError) as info:
        check_real("c_w", value)
    text = str(info.value)
    assert text.startswith("c_w must be ") and "\n" not in text


def test_check_nonnegative_accepts_zero_and_pins_message():
    assert check_nonnegative("c_b", 0) == 0.0
    assert type(check_nonnegative("c_b", 2)) is float
    with pytest.raises(ValueError) as info:
        check_nonnegative("c_b", -0.5)
    assert str(info.value) == "c_b must be a variance >= 0. Got -0.5. Variances cannot be negative."
    with pytest.raises(ValueError, match=r"^c_b must be a variance >= 0"):
        check_nonnegative("c_b", -5e-324)  # the smallest negative double
    with pytest.raises(TypeError, match=r"^c_b must be a real number"):
        check_nonnegative("c_b", True)


def test_check_positive():
    assert check_positive("lr", 1) == 1.0
    assert check_positive("lr", 5e-324) == 5e-324
    for bad in (0, 0.0, -1.0):
        with pytest.raises(ValueError) as info:
            check_positive("lr", bad)
        assert str(info.value) == f"lr must be > 0. Got {float(bad)!r}."


# check_int -------------------------------------------------------------------------------


def test_check_int_converts_numpy_integers():
    out = check_int("width", np.int64(5), minimum=1)
    assert type(out) is int and out == 5
    assert check_int("depth", -3) == -3  # no minimum given


@pytest.mark.parametrize(
    "value", [3.0, 2.5, "3", True, False, None, torch.tensor(3), np.float64(3)]
)
def test_check_int_refuses_non_integers(value):
    with pytest.raises(TypeError) as info:
        check_int("width", value, minimum=1)
    assert str(info.value) == f"width must be an integer. Got {value!r}."


def test_check_int_minimum_message():
    assert check_int("depth", 1, minimum=1) == 1
    with pytest.raises(ValueError) as info:
        check_int("depth", 0, minimum=1)
    assert str(info.value) == "depth must be an integer >= 1. Got 0."


# check_choice ----------------------------------------------------------------------------


def test_check_choice():
    assert check_choice("backend", "torch", ("auto", "torch")) == "torch"
    with pytest.raises(ValueError) as info:
        check_choice("backend", "gpu", ("auto", "torch"))
    assert str(info.value) == "backend must be one of 'auto', 'torch'. Got 'gpu'."
    for bad in (None, 1, ["auto"], "AUTO"):
        with pytest.raises(ValueError, match=r"^backend must be one of 'auto', 'torch'\. Got "):
            check_choice("backend", bad, ("auto", "torch"))


# as_float_tensor -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        np.array([[1.0, 2.0]], dtype=np.float32),
        np.array([[1, 2]], dtype=np.int32),
        np.array([[1, 2]], dtype=np.uint8),
        [[1, 2]],
        [[1.0, 2.0]],
        ((1, 2.0),),
    ],
)
def test_as_float_tensor_converts_numpy_and_lists_to_float64(value):
    out = as_float_tensor("x", value, ndim=2)
    assert isinstance(out, torch.Tensor)
    assert out.dtype == torch.float64
    assert out.tolist() == [[1.0, 2.0]]


def test_as_float_tensor_copies_numpy_input():
    array = np.array([[1.0, 2.0]])
    out = as_float_tensor("x", array)
    array[0, 0] = 5.0
    assert out[0, 0].item() == 1.0


def test_as_float_tensor_integer_tensor_becomes_float64():
    out = as_float_tensor("x", torch.tensor([[1, 2]]))
    assert out.dtype == torch.float64
    assert out.tolist() == [[1.0, 2.0]]


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_as_float_tensor_keeps_float_dtype_unless_asked(dtype):
    x = torch.ones(2, 3, dtype=dtype)
    assert as_float_tensor("x", x).dtype == dtype
    assert as_float_tensor("x", x, dtype=torch.float64).dtype == torch.float64


def test_as_float_tensor_scalar_numbers():
    assert as_float_tensor("x", 2).item() == 2.0
    with pytest.raises(ValueError, match=r"^x must be a 2-D array\. Got 'shape \(\)'"):
        as_float_tensor("x", 2.5, ndim=2)


@pytest.mark.parametrize(
    "value",
    [
        np.array([[True, False]]),
        torch.tensor([[True, False]]),
        [[True, False]],
        True,
    ],
)
def test_as_float_tensor_refuses_booleans(value):
    # The docstring: "complex, boolean, empty and non-finite inputs are refused".
    with pytest.raises(TypeError) as info:
        as_float_tensor("x", value)
    assert str(info.value).startswith("x must be ")


def test_as_float_tensor_wrong_rank_message():
    with pytest.raises(ValueError) as info:
        as_float_tensor("x1", np.ones(3), ndim=2)
    assert str(info.value) == (
        "x1 must be a 2-D array. Got 'shape (3,)'. Pass inputs as (n_samples, n_features); "
        "reshape a single input with x[None, :]."
    )
    with pytest.raises(ValueError, match=r"^x must be a 1-D array\. Got 'shape \(2, 2\)'\.$"):
        as_float_tensor("x", np.ones((2, 2)), ndim=1)


@pytest.mark.parametrize("shape", [(0,), (0, 3), (3, 0)])
def test_as_float_tensor_refuses_empty(shape):
    with pytest.raises(ValueError) as info:
        as_float_tensor("x", np.ones(shape))
    assert str(info.value) == f"x must be non-empty. Got 'shape {shape}'."


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_as_float_tensor_refuses_non_finite(bad):
    for value in (np.array([[1.0, bad]]), torch.tensor([[1.0, bad]]), [[1.0, bad]]):
        with pytest.raises(ValueError) as info:
            as_float_tensor("x", value)
        assert str(info.value) == "x must be finite (no NaN or inf). Got 'non-finite entries'."


def test_as_float_tensor_refuses_overflow_on_cast():
    with pytest.raises(ValueError, match=r"^x must be finite"):
        as_float_tensor("x", torch.tensor([1e300], dtype=torch.float64), dtype=torch.float32)


def test_as_float_tensor_refuses_ragged_lists():
    with pytest.raises(ValueError) as info:
        as_float_tensor("x", [[1.0, 2.0], [3.0]])
    assert str(info.value) == "x must be a rectangular array of numbers. Got [[1.0, 2.0], [3.0]]."


@pytest.mark.parametrize(
    "value",
    [
        np.array([1 + 2j]),
        [1 + 2j],
        np.array(["1.0"]),
        [["a", "b"]],
        [[None]],
        np.array([np.datetime64("2020-01-01")]),
    ],
)
def test_as_float_tensor_refuses_non_real_arrays(value):
    with pytest.raises(TypeError) as info:
        as_float_tensor("x", value)
    assert str(info.value).startswith("x must be an array of real numbers. Got ")


def test_as_float_tensor_refuses_complex_tensors():
    with pytest.raises(TypeError) as info:
        as_float_tensor("x", torch.ones(2, 2, dtype=torch.complex128))
    assert str(info.value) == "x must be real-valued. Got 'dtype torch.complex128'."


@pytest.mark.parametrize(
    ("value", "kind"),
    [("1.0", "str"), (b"1", "bytes"), (None, "NoneType"), ({1: 2}, "dict"), (1 + 1j, "complex")],
)
def test_as_float_tensor_refuses_other_types_by_type_name(value, kind):
    with pytest.raises(TypeError) as info:
        as_float_tensor("x", value)
    assert str(info.value) == f"x must be a torch.Tensor or NumPy array. Got {kind!r}."


# --- validators added for the fuzzed API (issue 23) ---------------------------------------


def test_as_float_tensor_keeps_or_detaches_the_graph():
    from dltheory._checks import as_float_array

    x = torch.ones(3, dtype=torch.float64, requires_grad=True)
    assert as_float_tensor("x", x).requires_grad
    assert not as_float_tensor("x", x, detach=True).requires_grad
    out = as_float_array("x", x)
    assert isinstance(out, np.ndarray) and out.tolist() == [1.0, 1.0, 1.0]


def test_as_float_tensor_allow_inf_and_empty():
    out = as_float_tensor("x", [float("inf"), 1.0], allow_inf=True)
    assert out.tolist() == [float("inf"), 1.0]
    with pytest.raises(ValueError) as info:
        as_float_tensor("x", [float("nan"), 1.0], allow_inf=True)
    assert str(info.value) == "x must be free of NaN. Got 'NaN entries'."
    assert as_float_tensor("x", [], allow_empty=True).numel() == 0


def test_as_float_tensor_refuses_bools_and_none_in_lists():
    with pytest.raises(TypeError) as info:
        as_float_tensor("x", True)
    assert str(info.value) == "x must be an array of real numbers, not booleans. Got True."
    with pytest.raises(TypeError) as info:
        as_float_tensor("x", np.array([1.0, None], dtype=object))
    assert str(info.value).startswith("x must be an array of real numbers. Got ")
    numbers_as_objects = np.array([1.0, 2], dtype=object)
    assert as_float_tensor("x", numbers_as_objects).tolist() == [1.0, 2.0]


def test_check_bytes_refuses_before_allocating():
    from dltheory._checks import check_bytes

    check_bytes("n", 1024.0)
    with pytest.raises(ValueError) as info:
        check_bytes("n", 8.0 * 10**12)
    assert str(info.value) == (
        "n must be small enough for the memory budget of 4 GiB. "
        "Got a request of about 7.28 TiB. Use a smaller size."
    )
    with pytest.raises(ValueError, match=r"budget of 1 KiB\. Got a request of about 2 KiB\."):
        check_bytes("n", 2048.0, budget=1024)


@pytest.mark.parametrize("bad", [None, 1, 0, "yes", 1.0])
def test_check_bool_refuses_non_flags(bad):
    from dltheory._checks import check_bool

    with pytest.raises(TypeError) as info:
        check_bool("flag", bad)
    assert str(info.value) == f"flag must be True or False. Got {bad!r}."
    assert check_bool("flag", np.bool_(True)) is True


def test_check_module_messages():
    from dltheory._checks import check_module

    with pytest.raises(TypeError) as info:
        check_module("model", lambda x: x)
    assert str(info.value) == (
        "model must be a torch.nn.Module. Got 'function'. Wrap a function in a Module."
    )
    with pytest.raises(ValueError) as info:
        check_module("model", torch.nn.Identity())
    assert str(info.value) == "model must be a module with parameters. Got 'Identity'."
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight[0, 0] = float("nan")
    with pytest.raises(ValueError) as info:
        check_module("model", net)
    assert (
        str(info.value) == "model must be a module with finite parameters. Got 'NaN/inf in weight'."
    )


def test_check_labels_messages():
    from dltheory._checks import check_labels

    assert check_labels("y", [0, 2, 1.0], 3).tolist() == [0, 2, 1]
    with pytest.raises(ValueError) as info:
        check_labels("y", [0, 3], 3)
    assert str(info.value) == "y must be class labels in [0, 3). Got 'labels from 0 to 3'."
    with pytest.raises(ValueError) as info:
        check_labels("y", [0, 0.5])
    assert str(info.value) == "y must be integer class labels. Got 'non-integer entries'."
    with pytest.raises(TypeError):
        check_labels("y", torch.tensor([True, False]))


def test_check_finite_result_blames_the_inputs():
    from dltheory._checks import check_finite_result

    check_finite_result("x", (torch.ones(2), np.ones(2), 1.0))
    with pytest.raises(ValueError) as info:
        check_finite_result("x", (torch.ones(2), float("inf")))
    assert str(info.value) == (
        "x must be small enough that the result is finite in float64. Got 'an overflow'. "
        "Rescale the inputs."
    )
