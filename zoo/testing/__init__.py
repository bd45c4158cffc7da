"""The contract kit: checks every plugin must pass, for third-party authors and the zoo.

Use it from a plugin's own tests::

    import pytest
    from zoo.testing import CHECKS, check_metric, check_plugin, run_check

    @pytest.mark.parametrize("check", CHECKS)
    def test_contract(check, tmp_path):
        run_check("my-method", check, tmp_path, plugin="my_plugin")

    def test_plugin():
        check_plugin("my_plugin")          # hooks, status, names (a plugin with no method too)

    def test_metric():
        check_metric("my-metric", plugin="my_plugin")

(``check_method(name, workdir)`` runs every check of ``CHECKS`` at once.) Every failure is a
:class:`KitFailure` (an ``AssertionError``) whose message reads
``NAME: [CHECK/SUB-CHECK] what went wrong``, e.g. ``my-fill: [sample/known-pixels] ...``;
its ``check`` and ``subcheck`` attributes hold the two names. The zoo's own suite runs the
kit over every method ``zoo list`` shows and every built-in per-image metric.

The method checks (``CHECKS``) and their sub-checks:

- ``registration``: the method is registered (``registered``; with ``plugin=``, by that
  plugin) and its ``MethodSpec`` is complete: ``summary``, ``family`` (from
  ``zoo.spec.FAMILIES``), ``config`` (a dataclass type), ``presets``, ``default-preset``,
  ``tiny-preset`` (a learned method needs ``tiny``);
- ``hooks``: what :func:`check_plugin` checks, on the plugin that owns the method, and
  ``unique``: no other plugin registers the same method name;
- ``presets``: every preset ``resolves`` and validates, its config is ``json``-serialisable,
  its model ``builds`` (on PyTorch's ``meta`` device: a 500 M-parameter preset costs no memory);
- ``bad-set``: an ``unknown-key`` and a ``wrong-type`` ``--set`` are one-line ``ZooError``s;
- ``train``: the ``tiny`` preset trains two steps through ``zoo train``'s code path
  (``runs``), leaves a ``checkpoint``, writes a ``log`` with ``finite-loss`` values;
- ``sample``: the hook ``runs`` and returns what the core expects (``output``: a
  ``SampleOutput`` of the input's shape), ``known-pixels`` are kept exactly, the result is
  ``finite``; ``same-seed``: the same generator seed gives the same output (every global RNG
  reset alike); ``generator-only``: the same generator seed under other global RNG states
  (torch, numpy, ``random``) gives the same output, else sampling draws from randomness other
  than the generator it is given; ``hole-ignored``: the hole content of the input changes
  nothing; ``odd-size``: a 33 x 31 image works or is refused in one line;
- ``round-trip``: the checkpoint holds the same ``keys`` and ``tensors`` and ``config``, and
  the reloaded model gives the ``same-samples``;
- ``score``: ``zoo_score`` (if the method has one) ``runs`` and returns a dict (``type``) of
  ``finite`` numbers.

Whenever a check cannot find the method, the sub-check is ``registered`` (the message lists
the plugins that did not load, and why); whenever it needs the tiny model and cannot make it,
``model``.

:func:`check_plugin` (check ``hooks``) takes a plugin name or the plugin object: ``found`` (a
plugin of that name is loaded or registered), ``names`` (every ``@hookimpl`` is named after a
hook of :mod:`zoo.hookspecs`: ``zoo_sampel`` fails with "did you mean zoo_sample?"), ``args``
(it takes only its hook's arguments), ``marker`` (no ``zoo_*`` hook function lacks
``@hookimpl``), ``status`` (the plugin is ``ok``, not broken or disabled), ``refused`` (no
method, metric, dataset or mask kind it registers was refused because another plugin
registered the name first).

:func:`check_metric` (check ``metric``) on a metric name: ``registered`` (with ``plugin=``,
by that plugin), ``unique`` (no plugin's registration of the name was refused); for a
per-image metric also ``prepare`` (``MetricSpec.prepare``, if any, succeeds), ``shape``
(``fn(pred, gt, mask)`` gives one value per image, also for one 33 x 31 image), ``finite``, ``range`` (inside ``value_range``), ``identical-best``
(``pred == gt`` scores at least as well as any fill), ``separates`` (on composited
predictions, as ``zoo compare`` gives them: a good fill, the truth plus slight noise, scores
better than a bad one, another image's content), and for ``needs_mask`` metrics
``hole-only`` (pixels farther than :data:`HOLE_MARGIN` px from the hole change nothing).
Distribution metrics (``per_image=False``) get only the first two.

Why these and not "hooks ignore other methods' names": the core calls a method's hooks only
on the plugin that registered the method, so a plugin never sees another's method names and
needs no ``if method != NAME`` guard. Metrics, datasets and mask kinds have no name argument;
for them the kit checks instead that the names a plugin registers are really its own
(``refused``, ``unique``) and that a hole metric reads the hole and nothing far from it
(``separates``, ``hole-only``): the core keeps the known pixels of every prediction equal to
the ground truth, so a metric of the known region measures nothing.

:func:`example_batch` gives the images and masks the kit samples with, for a plugin's tests.
"""

from __future__ import annotations

from zoo.testing.common import HOLE_MARGIN, SIZE, KitFailure, example_batch
from zoo.testing.method import CHECKS, check_method, run_check
from zoo.testing.metric import check_metric
from zoo.testing.plugin import check_plugin

__all__ = ["CHECKS", "KitFailure", "SIZE", "HOLE_MARGIN", "check_method", "check_metric", "check_plugin", "example_batch", "run_check"]
