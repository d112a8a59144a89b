"""The Explain dock's channel section: which channel carried the evidence.

With "per channel" ticked, Run passes ``per_channel=True`` to ``explain()``. The
result's ``channel_importance`` is drawn as a small matplotlib bar chart (one bar
per channel, labelled with its name and value; one colour per target), titled with
the well/field and method captured when Run was pressed. "add channel maps" adds
the result's per-channel maps as layers (``"PCIM · treated · GFP · B03 f0"``, built
by :func:`napari_pcim.layers.result_layer_data` with ``channels=True``), to the
well and field of that run, whatever is shown now.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from qtpy.QtWidgets import QCheckBox, QPushButton, QVBoxLayout, QWidget

from napari_pcim.layers import result_layer_data
from napari_pcim.vocabulary import field_label

if TYPE_CHECKING:
    from napari.layers import Layer

    from napari_pcim._napari.widgets.session import Session
    from napari_pcim._napari.widgets.workers import RunContext
    from napari_pcim.explainers import Attribution

CHART_HEIGHT_PX = 170


class ChannelPanel(QWidget):
    """The "per channel" switch, the channel-importance chart and "add channel maps"."""

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        super().__init__(parent)
        self.session = session
        self.result: tuple[RunContext, Attribution] | None = None
        self.per_channel_box = QCheckBox("per channel: channel importance and channel maps")
        self.per_channel_box.setToolTip(
            "Also split the map by channel (explain(..., per_channel=True)): a bar chart of "
            "each channel's share of the positive attribution, and per-channel map layers"
        )
        self.figure = Figure(figsize=(3.2, 1.8), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setFixedHeight(CHART_HEIGHT_PX)
        self.canvas.setVisible(False)
        self.add_btn = QPushButton("add channel maps")
        self.add_btn.setToolTip("Add the last per-channel run's maps as layers, one per channel")
        self.add_btn.setEnabled(False)
        self.add_btn.clicked.connect(lambda: self.add_channel_maps())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.per_channel_box)
        layout.addWidget(self.canvas)
        layout.addWidget(self.add_btn)

    @property
    def per_channel(self) -> bool:
        """Whether Run asks for per-channel attribution."""
        return self.per_channel_box.isChecked()

    def show_result(self, ctx: RunContext, attribution: Attribution) -> None:
        """Chart the channel importance of a finished run (or hide the chart: none)."""
        from napari_pcim.explainers import method_label

        if attribution.channel_importance is None:
            return
        self.result = (ctx, attribution)
        importance = np.asarray(attribution.channel_importance)[0]  # (T, C)
        names = list(attribution.channel_names or ())
        targets = [attribution.classes[int(k)] for k in np.asarray(attribution.targets)[0]]
        self.figure.clear()
        ax = self.figure.add_subplot()
        width = 0.8 / len(targets)
        x = np.arange(len(names))
        for t, target in enumerate(targets):
            bars = ax.bar(x + (t - (len(targets) - 1) / 2) * width, importance[t], width,
                          label=target)
            ax.bar_label(bars, labels=[f"{v:.2f}" for v in importance[t]], fontsize=7)
        ax.set_xticks(x, names, fontsize=8)
        ax.set_ylim(0, max(1.0, float(importance.max()) * 1.15))
        ax.set_ylabel("share", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
        if len(targets) > 1:
            ax.legend(fontsize=7)
        ax.set_title(
            f"{field_label(ctx.well, ctx.field)} · {method_label(ctx.method)} · "
            f"{' / '.join(targets)}", fontsize=8,
        )
        self.canvas.setVisible(True)
        self.canvas.draw_idle()
        self.add_btn.setEnabled(True)
        self.add_btn.setText(f"add channel maps ({field_label(ctx.well, ctx.field)})")

    def bar_heights(self) -> list[list[float]]:
        """The chart's bar heights, one list per target (what the chart shows)."""
        if not self.figure.axes:
            return []
        return [[float(b.get_height()) for b in c] for c in self.figure.axes[0].containers]

    def add_channel_maps(self) -> list[Layer]:
        """Add the last per-channel run's channel maps as layers of its own well and field."""
        from napari_pcim.explainers import method_label

        if self.result is None:
            return []
        ctx, attribution = self.result
        layer_data = result_layer_data(
            attribution, label=method_label(ctx.method), well=ctx.well, field=ctx.field,
            scale=ctx.scale, translate=ctx.translate, channels=True,
            metadata={"model": str(ctx.classifier.path), "plate": ctx.plate},
            scales=self.session.scales,
        )
        return self.session.add_layers(ctx.well, layer_data)
