"""The Train page's view of the network changing as it trains: the first layer's filters and one test
image's feature maps, from the run's snapshots (cnnlab.snapshots). Live while it trains; a slider over
its start and epochs' ends once it has finished."""

from __future__ import annotations

import numpy as np
import streamlit as st

import cnnlab
from cnnlab.charts import tile
from cnnlab.snapshots import Snapshot

from .text import t


def panel(run, live: bool) -> None:
    """The run's network as of its latest snapshot (`live`), or as of the one the learner slides to."""
    if cnnlab.get_architecture(run.config.model.arch).head is not None:
        st.caption(t("train.network_frozen"))
        return
    if (run.latest_snapshot if live else (run.snapshots or [None])[-1]) is None:
        return
    st.subheader(t("train.network_title"))
    snapshot = run.latest_snapshot if live else _scrubbed(run)
    if live:
        st.caption(t("train.network_live", at=f"{snapshot.at:.2f}"))
    filters = snapshot.filters
    if len(filters):
        st.image(tile(filters / 255.0, columns=8, scale=max(1, 48 // max(filters.shape[1], 1))),
                 caption=t("train.network_filters", shown=len(filters), count=snapshot_count(run, filters),
                           size="x".join(map(str, filters.shape[1:]))))
    if not snapshot.layers:
        return
    layer = st.selectbox(t("train.network_layer"), snapshot.layers, key=f"network-layer-{run.id}")
    maps = snapshot.maps_of(layer)
    height, width, channels = snapshot.shapes[snapshot.layers.index(layer)]
    st.image(tile(maps / 255.0, columns=4, scale=max(1, 96 // max(maps.shape[1], 1))),
             caption=t("train.network_maps", image=snapshot.image, layer=layer, shown=len(maps), channels=channels,
                       height=height, width=width))


def snapshot_count(run, filters: np.ndarray) -> int:
    """How many filters the first layer has in all (a snapshot holds the first 64)."""
    first = next((row for row in cnnlab.layer_table(run.config.model).rows if row.type == "Conv2D"), None)
    return first.output_shape[-1] if first is not None else len(filters)


def _scrubbed(run) -> Snapshot | None:
    kept = run.snapshots
    if not kept:
        return None
    if len(kept) == 1:
        return kept[0]
    names = [t("train.network_start") if s.kind == "start" and not s.epoch else t("train.network_epoch", epoch=s.epoch)
             for s in kept]  # a continued run starts at the epoch it carries on from
    chosen = st.select_slider(t("train.network_when"), options=list(range(len(kept))), value=len(kept) - 1,
                              format_func=names.__getitem__, key=f"network-when-{run.id}",
                              help=t("train.network_scrub"))
    return kept[chosen]
