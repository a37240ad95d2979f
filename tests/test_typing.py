"""Every public callable of the three packages is fully annotated.

The rule, checked on the signature (``inspect.signature``, which follows decorators that set
``__wrapped__``):

* **what is public**: every function in ``__all__`` of ``shared_math``, ``pyro_gmm`` and
  ``numpyro_gmm``; for every class in those ``__all__`` (and the classes of the component
  families in ``shared_math.FAMILIES``, which ``get_family`` hands out), its ``__init__`` and
  every attribute not starting with ``_`` that the class itself defines (in its
  ``__dict__``) as a function, ``staticmethod``, ``classmethod`` or ``property`` (getter and
  setter) and whose code lives in one of the three packages.  Methods inherited from Pyro,
  NumPyro, torch or ``tuple`` are not ours and are skipped; so are other dunders and the
  fields of ``NamedTuple`` classes (annotated in the class body);
* **what must be annotated**: the return type, and every parameter, ``*args`` and
  ``**kwargs`` included, except the first parameter of a method or classmethod
  (``self``/``cls``), which type checkers infer.

Annotations are checked for presence only; whether they are right is ``mypy``'s job (``make
lint``, ``disallow_incomplete_defs`` in ``pyproject.toml``).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator

PACKAGES = ("shared_math", "pyro_gmm", "numpyro_gmm")


def _ours(function: Callable[..., object]) -> bool:
    module = getattr(inspect.unwrap(function), "__module__", None) or ""
    return module.split(".")[0] in PACKAGES


def _public_classes() -> Iterator[tuple[str, type]]:
    import shared_math

    seen: set[type] = set()
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value) and value not in seen:
                seen.add(value)
                yield f"{package}.{name}", value
    for family in shared_math.FAMILIES.values():
        cls = type(family)
        if cls not in seen:
            seen.add(cls)
            yield f"shared_math.families.{cls.__name__}", cls


def public_callables() -> Iterator[tuple[str, Callable[..., object], bool]]:
    """``(qualified name, function, is_method)`` for every public callable (the rule above)."""
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isfunction(inspect.unwrap(value)) and _ours(value):
                yield f"{package}.{name}", value, False
    for class_name, cls in _public_classes():
        # the class's own attributes and those it inherits from our (possibly private) bases
        own: dict[str, object] = {}
        for klass in reversed(cls.__mro__):
            if klass.__module__.split(".")[0] in PACKAGES:
                own.update(vars(klass))
        for attribute, value in own.items():
            if attribute.startswith("_") and attribute != "__init__":
                continue
            if isinstance(value, staticmethod):
                candidates = [(value.__func__, False)]
            elif isinstance(value, classmethod):
                candidates = [(value.__func__, True)]
            elif isinstance(value, property):
                candidates = [(f, True) for f in (value.fget, value.fset) if f is not None]
            elif inspect.isfunction(inspect.unwrap(value)):
                candidates = [(value, True)]
            else:
                continue  # class constants, constraints, NamedTuple fields
            for function, is_method in candidates:
                if _ours(function):
                    yield f"{class_name}.{attribute}", function, is_method


def missing_annotations(function: Callable[..., object], is_method: bool) -> list[str]:
    """What ``function`` lacks: ``"return"`` and the names of unannotated parameters."""
    signature = inspect.signature(function)
    parameters = list(signature.parameters.values())
    if (
        is_method
        and parameters
        and parameters[0].kind in (parameters[0].POSITIONAL_ONLY, parameters[0].POSITIONAL_OR_KEYWORD)
    ):
        parameters = parameters[1:]  # self / cls
    missing = [p.name for p in parameters if p.annotation is inspect.Parameter.empty]
    if signature.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def test_every_public_callable_is_annotated():
    callables = list(public_callables())
    # The walk itself must find the API (a silent empty walk would pass trivially).
    assert len(callables) > 200, len(callables)
    problems = {
        name: missing
        for name, function, is_method in callables
        if (missing := missing_annotations(function, is_method))
    }
    assert not problems, "unannotated public callables (name: missing annotations):\n" + "\n".join(
        f"  {name}: {', '.join(missing)}" for name, missing in sorted(problems.items())
    )


def test_the_walk_covers_functions_methods_properties_and_classmethods():
    names = {name for name, _, _ in public_callables()}
    expected = {
        "shared_math.log_prob",
        "shared_math.implicit_vjp",  # through the estimators' decorator (__wrapped__)
        "shared_math.full_covariance_implicit_vjp",  # through flushing_subnormals
        "shared_math.LocationScaleFamily.log_cdf",
        "shared_math.LocationScaleFamily.real_line",
        "shared_math.families.StudentT.log_cdf",
        "pyro_gmm.DiagNormalMixture.__init__",
        "pyro_gmm.DiagNormalMixture.infer_shapes",
        "pyro_gmm.DiagNormalMixture.rsample",
        "pyro_gmm.DiagNormalMixture.mean",
        "pyro_gmm.MultivariateNormalMixture.draw_noise",
        "pyro_gmm.AutoDiagonalNormalMixture.median",  # under torch.no_grad()
        "pyro_gmm.Stratified_ELBO.differentiable_loss",
        "numpyro_gmm.DiagNormalMixture.sample",
        "numpyro_gmm.MultivariateNormalMixture.log_prob",  # under validate_sample
        "numpyro_gmm.ReparamMixtureSameFamily.has_rsample",
        "numpyro_gmm.AutoMultivariateNormalMixture.get_posterior",
        "numpyro_gmm.Stratified_ELBO.loss_with_mutable_state",
    }
    assert expected <= names, sorted(expected - names)
    # inherited framework methods are not ours
    assert "pyro_gmm.DiagNormalMixture.entropy" not in names
    assert "numpyro_gmm.DiagNormalMixture.tree_flatten" not in names


def test_the_checker_finds_what_it_should():
    def bare(x, *args, y=1, **kwargs):
        return x

    def partial(x: int, y) -> int:
        return x

    def full(x: int, *args: int, y: int = 1, **kwargs: str) -> int:
        return x

    class Holder:
        def method(self, x: int) -> int:
            return x

        def unannotated_method(self, x):
            return x

    assert missing_annotations(bare, False) == ["x", "args", "y", "kwargs", "return"]
    assert missing_annotations(partial, False) == ["y"]
    assert missing_annotations(full, False) == []
    assert missing_annotations(Holder.method, True) == []
    assert missing_annotations(Holder.unannotated_method, True) == ["x", "return"]


def test_estimator_functions_show_their_public_signature():
    """The vjp/jvp functions sit behind a common front (``shared_math.estimators``): ``inspect``
    (and so the API docs) must show the keywords callers pass, not the internal ``cdf``."""
    import shared_math

    for name in ("implicit_vjp", "hybrid_jvp", "rao_blackwell_vjp", "rao_blackwell_jvp"):
        parameters = inspect.signature(getattr(shared_math, name)).parameters
        assert "cdf" not in parameters, name
        assert parameters["family"].default == "normal", name
        assert parameters["family"].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert {"shape_params", "cdf_gradient", "cdf_noise", "xp"} <= set(parameters), name
        assert ("shape_dots" in parameters) == name.endswith("_jvp"), name
