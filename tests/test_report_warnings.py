"""Every warning compare raises reaches the page, in the section of each measure it concerns."""

from __future__ import annotations

import html
import warnings

import numpy as np

from reprsim.comparison import compare
from reprsim.measures import ConstantNeuronWarning, FewRowsWarning
from reprsim.report import write_report
from reprsim.store import ActivationStore


def section_of(page: str, anchor: str) -> str:
    start = page.index(f'<section id="{anchor}"')
    return page[start : page.index("</section>", start)]


def test_every_warning_compare_raises_is_on_the_page(tmp_path):
    rng = np.random.default_rng(5)
    store = ActivationStore(tmp_path / "acts")
    lengths = [10] * 6  # 60 rows for widths of 8: fewer than 10 x width, so CCA-type measures warn
    for name in ("A", "B"):
        layer = rng.standard_normal((60, 8)).astype(np.float32)
        if name == "B":
            layer[:, 3] = 1.5  # a constant neuron: neuron-level and CCA-type scores leave it out, with a warning
        writer = store.writer(name, {"name": name}, [0, 1], [8, 8], lengths, None, "float32")
        writer.write_sentences(0, len(lengths), [layer, layer + rng.standard_normal((60, 8)).astype(np.float32)],
                               None)
        writer.finalize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = compare(store, measures=["cca_rho", "maxsim", "linear_cka"], progress=False)
    raised = {(w.category.__name__, str(w.message)) for w in caught if w.category.__module__.startswith("reprsim")}
    assert {category for category, _ in raised} >= {FewRowsWarning.__name__, ConstantNeuronWarning.__name__}
    page = write_report(table, tmp_path / "report", progress=False).read_text(encoding="utf-8")
    for _, message in raised:
        assert html.escape(message) in page, message
    for entry in table.provenance["warnings"]:
        section = section_of(page, f"m-{entry['measure']}")
        assert html.escape(entry["message"]) in section and entry["category"] in section
    # linear_cka is concerned by neither warning, and its section says nothing of them.
    assert "warning(s) raised" not in section_of(page, "m-linear_cka")
    assert "FewRowsWarning" in section_of(page, "m-cca_rho")
    assert "FewRowsWarning" not in section_of(page, "m-maxsim")
    assert "ConstantNeuronWarning" in section_of(page, "m-maxsim")
    # The summary's findings name the measures that warned.
    assert "raised warnings while computed" in section_of(page, "summary")
