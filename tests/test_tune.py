"""The autotuner (convt_jax._tune): switch, choice, caches in memory and on disk, tracing."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from convt_jax import _onednn, _tune

SPEC = jax.ShapeDtypeStruct((64, 64), jnp.float32)


def _slow(x):
    # Many dependent matrix products: milliseconds, against microseconds for ``x * 2``.
    def body(_, y):
        return jnp.tanh(y @ y.T * 1e-2)

    return jax.lax.fori_loop(0, 400, body, x) * 0 + x * 2


def counted(counts):
    """Candidates that count how often they are traced (= compiled for timing)."""

    def fast(x):
        counts["fast"] += 1
        return x * 2

    def slow(x):
        counts["slow"] += 1
        return _slow(x)

    return {"fast": fast, "slow": slow}


@pytest.fixture
def tuning(tmp_path, monkeypatch):
    """Tuning on, the cache in a fresh temporary directory, everything restored after."""
    monkeypatch.setenv(_tune.ENV_CACHE_DIR, str(tmp_path / "cache"))
    _tune.clear_tuning_cache(disk=False)
    with _tune.autotune(True):
        yield tmp_path / "cache"
    _tune.clear_tuning_cache(disk=False)


def test_off_by_default_returns_default_without_timing(monkeypatch, tmp_path):
    monkeypatch.setenv(_tune.ENV_CACHE_DIR, str(tmp_path))
    counts = collections.Counter()
    with _tune.autotune(False):
        assert not _tune.enabled()
        assert _tune.choose("forward", ("k",), counted(counts), [SPEC], "slow") == "slow"
    assert counts == {}
    assert not os.path.exists(tmp_path) or os.listdir(tmp_path) == []


def test_switch_function_and_context_manager_restore():
    before = _tune.enabled()
    try:
        _tune.autotune(False)
        assert not _tune.enabled()
        with _tune.autotune():
            assert _tune.enabled()
            with _tune.autotune(False):
                assert not _tune.enabled()
            assert _tune.enabled()
        assert not _tune.enabled()
        _tune.autotune(True)
        assert _tune.enabled()
        with pytest.raises(RuntimeError), _tune.autotune(False):
            raise RuntimeError("restored on error too")
        assert _tune.enabled()
    finally:
        _tune.autotune(before)


def test_switch_rejects_non_bool():
    with pytest.raises(TypeError, match=r"autotune\(enabled='yes'\) must be a bool, not str"):
        _tune.autotune("yes")


def test_fast_candidate_wins_and_times_are_recorded(tuning):
    counts = collections.Counter()
    assert _tune.choose("forward", ("k",), counted(counts), [SPEC], "slow") == "fast"
    assert counts == {"fast": 1, "slow": 1}
    (entry,) = _tune.tuning_cache()
    assert entry["kind"] == "forward" and entry["choice"] == "fast"
    assert set(entry["times"]) == {"fast", "slow"}
    assert 0 < entry["times"]["fast"] < entry["times"]["slow"]
    assert all(entry["medians"][n] >= entry["times"][n] for n in ("fast", "slow"))
    assert entry["machine"]["device_kind"].startswith(jax.devices()[0].device_kind)
    assert entry["machine"]["jax"] == jax.__version__


def test_cache_hit_does_not_time_again(tuning):
    counts = collections.Counter()
    first = _tune.choose("forward", ("k",), counted(counts), [SPEC], "slow")
    for _ in range(3):
        assert _tune.choose("forward", ("k",), counted(counts), [SPEC], "slow") == first
    assert counts == {"fast": 1, "slow": 1}
    # Another kind, key, shape or dtype is another configuration.
    _tune.choose("dx", ("k",), counted(counts), [SPEC], "slow")
    _tune.choose("forward", ("other",), counted(counts), [SPEC], "slow")
    _tune.choose(
        "forward", ("k",), counted(counts), [jax.ShapeDtypeStruct((32, 64), "float32")], "slow"
    )
    assert counts == {"fast": 4, "slow": 4}
    assert len(_tune.tuning_cache()) == 4


def test_default_kept_unless_clearly_faster():
    assert _tune._pick({"a": 0.95, "b": 1.0}, "b") == "b"  # 5 %: noise, keep the default
    assert _tune._pick({"a": 0.85, "b": 1.0}, "b") == "a"
    assert _tune._pick({"a": 1.2, "b": 1.0}, "b") == "b"
    assert _tune._pick({"a": 2.0, "b": None, "c": 1.0}, "b") == "c"  # default failed
    assert _tune._pick({"a": None, "b": None}, "b") == "b"


def test_compile_failure_is_skipped(tuning):
    def broken(x):
        return x.reshape(7, -1)  # 4096 is not a multiple of 7: TypeError while tracing

    candidates = {"broken": broken, "fast": lambda x: x * 2, "slow": _slow}
    assert _tune.choose("forward", ("k",), candidates, [SPEC], "broken") == "fast"
    (entry,) = _tune.tuning_cache()
    assert entry["times"]["broken"] is None
    assert "broken" in entry["errors"] and "TypeError" in entry["errors"]["broken"]


def test_all_candidates_failing_gives_default(tuning):
    def broken(x):
        raise ValueError("cannot lower")

    assert _tune.choose("forward", ("k",), {"a": broken, "b": broken}, [SPEC], "b") == "b"


def test_default_must_be_a_candidate(tuning):
    with pytest.raises(ValueError, match=r"default='c' must be one of the candidates \['a', 'b'\]"):
        _tune.choose("forward", ("k",), {"a": jnp.sin, "b": jnp.cos}, [SPEC], "c")


def test_stand_ins_are_deterministic_and_finite():
    specs = [
        jax.ShapeDtypeStruct((3, 4), d)
        for d in ("float32", "float16", jnp.bfloat16, "complex64", "int32", "uint8", "bool")
    ]
    a = [_tune._stand_in(s, np.random.default_rng(0)) for s in specs]
    b = [_tune._stand_in(s, np.random.default_rng(0)) for s in specs]
    for s, x, y in zip(specs, a, b, strict=True):
        assert x.shape == s.shape and x.dtype == np.dtype(s.dtype)
        np.testing.assert_array_equal(x, y)
        if np.issubdtype(x.dtype, np.inexact) or x.dtype == np.dtype(jnp.bfloat16):
            assert np.all(np.isfinite(x.astype(np.complex128)))
    assert np.ptp(a[0]) > 0


def _trace_check(transform, tuning, x, pass_tracer=False):
    counts = collections.Counter()
    seen = []

    def f(x):
        # The caller may pass the tracer itself: only its shape and dtype are read.
        spec = x if pass_tracer else jax.ShapeDtypeStruct(x.shape, x.dtype)
        seen.append(isinstance(x, jax.core.Tracer))
        choice = _tune.choose("forward", ("traced",), counted(counts), [spec], "slow")
        return {"fast": x * 2, "slow": x * 3}[choice].sum()

    out = transform(f)(x)
    assert seen == [True]
    assert counts == {"fast": 1, "slow": 1}
    return out


def test_works_while_jit_traces(tuning):
    x = jnp.ones((64, 64), jnp.float32)
    assert float(_trace_check(jax.jit, tuning, x)) == 2 * 64 * 64


def test_works_while_grad_traces(tuning):
    x = jnp.ones((64, 64), jnp.float32)
    g = _trace_check(jax.grad, tuning, x)
    np.testing.assert_array_equal(g, np.full((64, 64), 2.0, np.float32))


def test_works_while_vmap_traces(tuning):
    x = jnp.ones((3, 64, 64), jnp.float32)  # each example (64, 64), as SPEC
    out = _trace_check(jax.vmap, tuning, x, pass_tracer=True)
    np.testing.assert_array_equal(out, np.full(3, 2.0 * 64 * 64, np.float32))


def test_disk_cache_written_atomically_and_read_back(tuning):
    counts = collections.Counter()
    choice = _tune.choose("forward", ("k",), counted(counts), [SPEC], "slow")
    path = _tune.cache_file()
    assert os.path.dirname(path) == str(tuning)
    name = os.path.basename(path)
    assert jax.devices()[0].platform in name and jax.__version__ in name
    assert os.listdir(tuning) == [name]  # no temporary file left behind
    data = json.loads(open(path).read())
    assert data["format"] == _tune.FORMAT and data["jax"] == jax.__version__
    assert [e["choice"] for e in data["entries"].values()] == [choice]
    # Forget memory only: the choice comes back from disk without timing.
    _tune.clear_tuning_cache(disk=False)
    assert _tune.choose("forward", ("k",), counted(counts), [SPEC], "slow") == choice
    assert counts == {"fast": 1, "slow": 1}


def test_clear_tuning_cache_clears_memory_and_disk(tuning):
    counts = collections.Counter()
    _tune.choose("forward", ("k",), counted(counts), [SPEC], "slow")
    assert _tune.tuning_cache() and os.listdir(tuning)
    _tune.clear_tuning_cache()
    assert _tune.tuning_cache() == [] and os.listdir(tuning) == []
    _tune.choose("forward", ("k",), counted(counts), [SPEC], "slow")
    assert counts == {"fast": 2, "slow": 2}


def test_tuning_cache_is_a_snapshot(tuning):
    _tune.choose("forward", ("k",), {"a": jnp.sin, "b": jnp.cos}, [SPEC], "a")
    view = _tune.tuning_cache()
    view[0]["choice"] = "changed"
    view.clear()
    assert [e["choice"] for e in _tune.tuning_cache()] != ["changed"]
    assert len(_tune.tuning_cache()) == 1


def test_corrupt_cache_file_is_ignored_with_a_warning(tuning):
    path = _tune.cache_file()
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        f.write("{not json")
    counts = collections.Counter()
    with pytest.warns(RuntimeWarning, match="ignoring the autotuning cache"):
        assert _tune.choose("forward", ("k",), counted(counts), [SPEC], "slow") == "fast"
    data = json.loads(open(path).read())  # rewritten, valid
    assert len(data["entries"]) == 1


def test_cache_of_another_machine_in_the_file_is_ignored(tuning):
    path = _tune.cache_file()
    os.makedirs(os.path.dirname(path))
    with open(path, "w") as f:
        json.dump({"format": _tune.FORMAT, "platform": "elsewhere", "entries": {}}, f)
    with pytest.warns(RuntimeWarning, match="not a format-1 cache for this machine"):
        _tune.choose("forward", ("k",), {"a": jnp.sin, "b": jnp.cos}, [SPEC], "a")


def test_unwritable_cache_dir_means_memory_only(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv(_tune.ENV_CACHE_DIR, str(blocker / "cache"))  # under a file: never a dir
    _tune.clear_tuning_cache(disk=False)
    counts = collections.Counter()
    try:
        with _tune.autotune(), pytest.warns(RuntimeWarning, match="kept in memory only"):
            assert _tune.choose("forward", ("k",), counted(counts), [SPEC], "slow") == "fast"
        with _tune.autotune(), warnings.catch_warnings():
            warnings.simplefilter("error")
            assert _tune.choose("forward", ("k",), counted(counts), [SPEC], "slow") == "fast"
        assert counts == {"fast": 1, "slow": 1}
    finally:
        _tune.clear_tuning_cache(disk=False)


def test_cache_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(_tune.ENV_CACHE_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _tune.cache_dir() == str(tmp_path / "xdg" / "convt_jax")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert _tune.cache_dir() == str(tmp_path / "home" / ".cache" / "convt_jax")
    monkeypatch.setenv(_tune.ENV_CACHE_DIR, str(tmp_path / "mine"))
    assert _tune.cache_dir() == str(tmp_path / "mine")


_CHILD = textwrap.dedent("""
    import collections, json, sys
    import jax, jax.numpy as jnp
    from convt_jax import _tune

    def slow(x):
        counts["slow"] += 1
        return jax.lax.fori_loop(0, 400, lambda _, y: jnp.tanh(y @ y.T * 1e-2), x) * 0 + x * 2

    def fast(x):
        counts["fast"] += 1
        return x * 2

    counts = collections.Counter()
    spec = jax.ShapeDtypeStruct((64, 64), jnp.float32)
    choice = _tune.choose("forward", ("child",), {"fast": fast, "slow": slow}, [spec], "slow")
    print(json.dumps({"enabled": _tune.enabled(), "choice": choice, "counts": counts}))
""")


def _child(cache_dir, switch):
    env = {k: v for k, v in os.environ.items() if k != _tune.ENV_SWITCH}
    env[_tune.ENV_CACHE_DIR] = str(cache_dir)
    if switch is not None:
        env[_tune.ENV_SWITCH] = switch
    out = subprocess.run(
        [sys.executable, "-c", _CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # five child interpreters, 7 s of a worker
def test_environment_switch_and_disk_cache_across_processes(tmp_path):
    off = _child(tmp_path, None)
    assert off == {"enabled": False, "choice": "slow", "counts": {}}
    assert _child(tmp_path, "0")["enabled"] is False
    first = _child(tmp_path, "1")  # times and writes the file
    assert first == {"enabled": True, "choice": "fast", "counts": {"fast": 1, "slow": 1}}
    again = _child(tmp_path, "true")  # reads the file: no timing
    assert again == {"enabled": True, "choice": "fast", "counts": {}}


def test_writes_keep_what_other_processes_wrote(tuning):
    candidates = {"a": jnp.sin, "b": jnp.cos}
    _tune.choose("forward", ("first",), candidates, [SPEC], "a")
    path = _tune.cache_file()
    data = json.loads(open(path).read())
    ((full, entry),) = data["entries"].items()
    data["entries"][full.replace("first", "elsewhere")] = dict(entry, key="from another process")
    with open(path, "w") as f:  # as another process would, after this one read the file
        json.dump(data, f)
    _tune.choose("forward", ("second",), candidates, [SPEC], "a")
    keys = sorted(e["key"] for e in json.loads(open(path).read())["entries"].values())
    assert len(keys) == 3 and "from another process" in keys


# --- method="auto" wired to the tuner (convt_jax._methods.resolve) ---------------------------

_LAYER = dict(stride=2, padding=1, groups=2)  # grouped: every table has several candidates


def _layer_arrays(batch=2):
    # Each test its own batch size: a jit-traced configuration keeps the forms it chose,
    # whatever the tuning cache holds later.
    rng = np.random.default_rng(0)
    return (
        jnp.asarray(rng.standard_normal((batch, 8, 6, 6)), jnp.float32),
        jnp.asarray(rng.standard_normal((8, 3, 4, 4)), jnp.float32),
    )


def _layer_step(method="auto"):
    import convt_jax as ct

    def loss(x, w):
        return jnp.sum(jnp.sin(ct.conv_transpose2d(x, w, **_LAYER, method=method)))

    return jax.jit(jax.value_and_grad(loss, (0, 1)))


def test_auto_is_tuned_under_jit_and_grad_and_gives_the_same_numbers(tuning):
    x, w = _layer_arrays()
    with _tune.autotune(False):
        want = _layer_step()(x, w)
    assert _tune.tuning_cache() == []
    got = _layer_step()(x, w)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    entries = {e["kind"]: e for e in _tune.tuning_cache()}
    assert set(entries) == {"forward", "dx", "dw"}
    # The candidates are the forms that apply to a grouped layer, every one timed (with
    # oneDNN's where that backend is in use).
    onednn = {"onednn"} if _onednn.available() else set()
    assert set(entries["forward"]["times"]) == {"dilated", "subpixel", "grouped"} | onednn
    assert set(entries["dx"]["times"]) == {"conv", "phase", "grouped"} | onednn
    assert set(entries["dw"]["times"]) == {"conv", "phase", "grouped"} | onednn
    for e in entries.values():
        assert e["choice"] in e["times"]
        assert all(t is not None and t > 0 for t in e["times"].values())
        assert "float32" in e["key"] and "(8, 3, 4, 4)" in e["key"]
    # A second trace of the same configuration reads the choice: nothing is timed again.
    _layer_step()(x + 1, w)
    assert len(_tune.tuning_cache()) == 3


def test_explicit_method_is_never_tuned(tuning):
    x, w = _layer_arrays(3)
    _layer_step("subpixel")(x, w)
    assert _tune.tuning_cache() == []


def test_turning_autotune_on_after_a_call_traces_again(tuning):
    import convt_jax as ct

    x, w = _layer_arrays(4)
    with _tune.autotune(False):
        off = ct.conv_transpose2d(x, w, **_LAYER)  # traced (and cached by jit) with the rule
    assert _tune.tuning_cache() == []
    on = ct.conv_transpose2d(x, w, **_LAYER)  # the switch is part of the jit cache key
    assert {e["kind"] for e in _tune.tuning_cache()} == {"forward", "dx", "dw"}
    np.testing.assert_allclose(on, off, rtol=1e-5, atol=1e-5)


_LAYER_CHILD = textwrap.dedent("""
    import json, sys
    import jax, jax.numpy as jnp, numpy as np
    import convt_jax as ct
    from convt_jax import _tune

    timed = []
    measure = _tune._measure
    _tune._measure = lambda candidates, args: timed.append(sorted(candidates)) or measure(
        candidates, args)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 8, 6, 6)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((8, 3, 4, 4)), jnp.float32)
    loss = lambda x, w: jnp.sum(jnp.sin(ct.conv_transpose2d(x, w, stride=2, padding=1,
                                                            groups=2)))
    value, (dx, dw) = jax.jit(jax.value_and_grad(loss, (0, 1)))(x, w)
    choices = {e["kind"]: e["choice"] for e in ct.tuning_cache()}
    print(json.dumps({"timed": timed, "choices": choices, "value": float(value),
                      "dx": np.asarray(dx).tolist()}))
""")


def _layer_child(cache_dir):
    env = dict(os.environ, **{_tune.ENV_CACHE_DIR: str(cache_dir), _tune.ENV_SWITCH: "1"})
    out = subprocess.run(
        [sys.executable, "-c", _LAYER_CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_second_process_reads_the_choice_from_disk(tmp_path):
    first = _layer_child(tmp_path)
    assert len(first["timed"]) == 3 and set(first["choices"]) == {"forward", "dx", "dw"}
    second = _layer_child(tmp_path)
    assert second["timed"] == []  # nothing timed: read from the file
    assert second["choices"] == first["choices"]
    # The same forms: bit-identical results from process to process.
    assert second["value"] == first["value"] and second["dx"] == first["dx"]
