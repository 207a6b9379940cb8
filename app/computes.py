"""The How it computes page's parts: the learner's run and test image, the layer to step through, and
each kind of layer's own arithmetic on the real numbers (cnnlab.compute), the output size of every
layer with its formula (cnnlab.sizes), and the region of the input a cell can see."""

from __future__ import annotations

import numpy as np
import streamlit as st

import cnnlab
from cnnlab import compute, i18n, sizes
from cnnlab.architectures import MAX_INPUT_SIZE
from cnnlab.charts import number_grid, picture_with_boxes

from . import session
from .text import arch_title, class_label, class_text, language, t
from .widgets import choose_trained_run, pick_test_image, refusal

AUTOPLAY_SECONDS = 0.5  # one output cell after another; each step is a round trip to the server
SHOWN_CHANNELS = 3      # a deep kernel reads hundreds of channels: the few that add the most are drawn
CLICKABLE_CELLS = 4096  # maps of up to 64x64 cells take a click; larger ones, the sliders
TOP_CLASSES = 10
STILL = {"displayModeBar": False}  # pictures and grids of numbers: nothing to zoom or pan, and a phone's taps select


def chosen():
    """The learner's trained run and one of its test images."""
    choice = choose_trained_run()
    data = session.validation_sample(choice)
    index, image, label = pick_test_image(data, key=f"computes-index-{choice.id}")
    st.caption(t("computes.image", index=index, label=class_text(data.class_names, label)))
    return choice, data, image


def pick_step(model) -> compute.Step:
    """The layer to look at, in the network's order, with Previous and Next."""
    steps = compute.steps(model)
    key = f"computes-step-{model.name}"
    if st.session_state.get(key, 0) >= len(steps):
        st.session_state[key] = 0
    back, pick, ahead = st.columns([1, 6, 1], vertical_alignment="bottom")
    at = st.session_state.get(key, 0)
    if back.button(t("computes.back"), key=f"{key}-back", help=t("computes.previous")) and at > 0:
        st.session_state[key] = at - 1
    if ahead.button(t("computes.ahead"), key=f"{key}-next", help=t("computes.next")) and at < len(steps) - 1:
        st.session_state[key] = at + 1
    at = pick.selectbox(t("computes.layer"), range(len(steps)), key=key, format_func=lambda i: t(
        "computes.step", number=i + 1, layer=steps[i].layer, type=steps[i].type,
        before=_shape(steps[i].input_shape), after=_shape(steps[i].output_shape)))
    return steps[at]


def traced(choice, image, step: compute.Step) -> compute.Trace:
    """One pass of the image, keeping this layer's arrays and the network's input (after preprocessing).
    The session keeps the arrays, not the trace: a trace holds its model, which the server's bounded
    cache of models must stay free to let go."""
    model = choice.run.model
    keep = [step.layer] + ([first] if (first := _network_input(model)) else [])
    key = (choice.id, id(model), hash(image.tobytes()), tuple(keep))
    held = st.session_state.get("computes-trace")
    if held is None or held[0] != key:
        made = compute.trace(model, image, keep=keep)
        held = st.session_state["computes-trace"] = (key, made.image, made.inputs, made.outputs, made.probabilities)
    return compute.Trace(model, held[1], tuple(compute.steps(model)), *held[2:])


def show(traced_: compute.Trace, step: compute.Step, class_names) -> None:
    """The layer's own operation, for the cell the learner chooses."""
    st.markdown(t(f"computes.what.{step.kind}"))
    shown = {"conv": _conv, "pool_max": _pool, "pool_avg": _pool, "activation": _activation,
             "batch_norm": _batch_norm, "flatten": _flatten, "dense": _dense}.get(step.kind)
    if step.kind == "softmax":
        _softmax(traced_, step, class_names)
    elif shown is not None:
        shown(traced_, step)


# --- Convolution -------------------------------------------------------------------------------------------------

def _conv(traced_: compute.Trace, step: compute.Step) -> None:
    height, width, filters = step.output_shape
    f = st.slider(t("computes.filter"), 0, filters - 1, 0, key=f"computes-filter-{step.layer}") if filters > 1 else 0
    playing = st.toggle(t("computes.autoplay"), key=f"computes-play-{step.layer}", help=t("computes.autoplay_help"))

    @st.fragment(run_every=AUTOPLAY_SECONDS if playing else None)
    def cell():
        row, col = _position(step, playing)
        c = compute.conv_cell(traced_, step.layer, f, row, col)
        left, right = st.columns(2)
        with left:
            st.caption(t("computes.input_patch", layer=step.layer, top=c.top, left=c.left, bottom=c.bottom,
                         right=c.right))
            shown = c.channels_by_contribution(SHOWN_CHANNELS)
            st.plotly_chart(picture_with_boxes(_channel_picture(traced_.input_of(step.layer), c.channels[0] + shown[0]),
                                               [(c.top, c.left, c.bottom, c.right)], lang=language()),
                            width="stretch", config=STILL, key=f"computes-in-{step.layer}")
        with right:
            st.caption(t("computes.output_cell", filter=f, row=row, col=col))
            _clickable_map(traced_.output_of(step.layer)[..., f], (row, col), step)
        _region(traced_, step, row, col)
        _conv_arithmetic(c)

    cell()


def _conv_arithmetic(c: compute.ConvCell) -> None:
    shown = c.channels_by_contribution(SHOWN_CHANNELS)
    channels = c.patch.shape[-1]
    if channels > len(shown):
        st.caption(t("computes.channels_shown", shown=len(shown), channels=channels))
    for ch in shown:
        st.markdown(t("computes.channel", channel=c.channels[0] + ch, total=_n(c.products[..., ch].sum())))
        patch_col, kernel_col, product_col = st.columns(3)
        size = max(200, 36 * c.patch.shape[0])
        patch_col.caption(t("computes.patch"))
        patch_col.plotly_chart(number_grid(c.patch[..., ch], language(), padding=c.is_padding, height=size),
                               width="stretch", config=STILL, key=f"computes-patch-{ch}")
        kernel_col.caption(t("computes.kernel"))
        kernel_col.plotly_chart(number_grid(c.kernel[..., ch], language(), signed=True, height=size),
                                width="stretch", config=STILL, key=f"computes-kernel-{ch}")
        product_col.caption(t("computes.products"))
        product_col.plotly_chart(number_grid(c.products[..., ch], language(), signed=True, padding=c.is_padding,
                                             height=size), width="stretch", config=STILL, key=f"computes-products-{ch}")
    st.markdown(t("computes.conv_sum", count=c.products.size, total=_n(c.total), bias=_n(c.bias), z=_n(c.z)))
    _checked("computes.activation_checked", c.output, c.model_value, c.matches, function=c.activation, z=_n(c.z))


# --- Pooling, activation, normalisation ---------------------------------------------------------------------------

def _pool(traced_: compute.Trace, step: compute.Step) -> None:
    channel = _channel_slider(step)
    row, col = _position(step, False)
    c = compute.pool_cell(traced_, step.layer, channel, row, col)
    left, right = st.columns(2)
    with left:
        st.caption(t("computes.window", top=c.top, left=c.left, bottom=c.bottom, right=c.right))
        st.plotly_chart(picture_with_boxes(traced_.input_of(step.layer)[..., channel], [(c.top, c.left, c.bottom,
                                                                                          c.right)], lang=language()),
                        width="stretch", config=STILL, key=f"computes-pool-in-{step.layer}")
    with right:
        st.caption(t("computes.output_cell", filter=channel, row=row, col=col))
        _clickable_map(traced_.output_of(step.layer)[..., channel], (row, col), step)
    height = max(140, 40 * c.window.shape[0])
    window = number_grid(c.window, language(), padding=c.is_padding, mark=c.kept, height=height)
    st.plotly_chart(window, config=STILL, key=f"computes-window-{step.layer}")
    if c.kind == "pool_max":
        _checked("computes.max_checked", c.output, c.model_value, c.matches, count=c.count, row=c.kept[0],
                 col=c.kept[1])
    else:
        _checked("computes.mean_checked", c.output, c.model_value, c.matches, count=c.count, total=_n(c.total))
    _region(traced_, step, row, col)


def _activation(traced_: compute.Trace, step: compute.Step) -> None:
    index = _cell_index(step)
    c = compute.activation_cell(traced_, step.layer, index)
    _checked("computes.activation_checked", c.after, c.model_value, c.matches, function=c.function, z=_n(c.before))
    if len(index) == 3:
        _region(traced_, step, *index[:2])


def _batch_norm(traced_: compute.Trace, step: compute.Step) -> None:
    index = _cell_index(step)
    c = compute.batch_norm_cell(traced_, step.layer, index)
    st.markdown(t("computes.batch_norm", x=_n(c.x), mean=_n(c.mean), variance=_n(c.variance), epsilon=_n(c.epsilon),
                  gamma=_n(c.gamma), beta=_n(c.beta), normalised=_n(c.normalised)))
    _checked("computes.result_checked", c.output, c.model_value, c.matches)
    if len(index) == 3:
        _region(traced_, step, *index[:2])


# --- Flatten, dense, softmax --------------------------------------------------------------------------------------

def _flatten(traced_: compute.Trace, step: compute.Step) -> None:
    size = int(np.prod(step.output_shape))
    index = st.slider(t("computes.flat_index"), 0, size - 1, 0, key=f"computes-flat-{step.layer}")
    c = compute.flatten_cell(traced_, step.layer, index)
    row, col, channel = c.position
    st.markdown(t("computes.flatten", index=index, row=row, col=col, channel=channel, value=_n(c.value),
                  height=c.map_shape[0], width=c.map_shape[1], channels=c.map_shape[2]))
    if tuple(c.map_shape[:2]) == (1, 1):
        st.info(t("computes.flatten_one_pixel", channels=c.map_shape[2]))
    _checked("computes.result_checked", c.value, c.map_value, c.matches)


def _dense(traced_: compute.Trace, step: compute.Step) -> None:
    units = step.output_shape[-1]
    unit = st.slider(t("computes.unit"), 0, units - 1, 0, key=f"computes-unit-{step.layer}")
    c = compute.dense_cell(traced_, step.layer, unit)
    st.caption(t("computes.dense_largest", shown=len(c.largest), count=len(c.inputs)))
    st.dataframe({t("computes.column.input"): [int(i) for i in c.largest],
                  t("computes.column.value"): [_n(c.inputs[i]) for i in c.largest],
                  t("computes.column.weight"): [_n(c.weights[i]) for i in c.largest],
                  t("computes.column.product"): [_n(c.products[i]) for i in c.largest]}, hide_index=True)
    st.markdown(t("computes.dense_sum", count=len(c.inputs), total=_n(c.total), bias=_n(c.bias), z=_n(c.z)))
    _checked("computes.activation_checked", c.output, c.model_value, c.matches, function=c.activation, z=_n(c.z))


def _softmax(traced_: compute.Trace, step: compute.Step, class_names) -> None:
    s = compute.softmax_step(traced_, step.layer)
    order = [int(i) for i in np.argsort(-s.probabilities)[:TOP_CLASSES]]
    st.dataframe({t("computes.column.class"): [class_label(class_names, i) for i in order],
                  t("computes.column.logit"): [_n(s.logits[i]) for i in order],
                  t("computes.column.shifted"): [_n(s.shifted[i]) for i in order],
                  t("computes.column.exp"): [_n(s.exponentials[i]) for i in order],
                  t("computes.column.probability"): [f"{s.probabilities[i]:.4%}" for i in order]}, hide_index=True)
    st.markdown(t("computes.softmax", shift=_n(s.shift), total=_n(s.total), classes=len(s.logits),
                  name=class_text(class_names, s.predicted), probability=f"{s.probabilities[s.predicted]:.2%}"))
    if s.matches:
        st.success(t("computes.softmax_matches"))
    else:
        st.error(t("computes.softmax_differs", value=_n(float(np.abs(s.probabilities - s.model_probabilities).max()))))


# --- Output size and receptive field -------------------------------------------------------------------------------

def size_of(model, step: compute.Step) -> None:
    """How this layer's output size follows from its input: the formula with its own numbers."""
    row = next((r for r in sizes.explain_sizes(model) if r.name == step.layer), None)
    if row is None or row.kind != "window":
        return
    for axis, s in ((t("computes.height"), row.height), (t("computes.width"), row.width)):
        st.markdown(formula(axis, s))
    if sizes.is_dense_in_effect(row):
        st.info(t("computes.dense_in_effect", n=row.height.n, channels=row.input_shape[-1], filters=row.channels))


def formula(axis: str, s: sizes.SizeStep) -> str:
    """⌊(n + 2p − k) / s⌋ + 1 with the layer's own numbers, and the pixels the floor leaves unread."""
    numbers = dict(axis=axis, n=s.n, p=s.pad_before + s.pad_after, k=s.effective_kernel, s=s.stride,
                   numerator=s.numerator, quotient=f"{s.quotient:g}", floor=s.floor, out=s.out, padding=s.padding)
    if s.dropped:
        return t("computes.formula_dropped", count=len(s.dropped), pixels=_pixels(s.dropped), **numbers)
    return t("computes.formula", **numbers)


def _region(traced_: compute.Trace, step: compute.Step, row: int, col: int) -> None:
    """The region of the network's input the chosen cell can see, drawn on that input."""
    first = _network_input(traced_.model)
    region = sizes.receptive_region(traced_.model, step.layer, row, col)
    seen = traced_.output_of(first) if first else traced_.image
    box = region.clipped or region.unclipped
    with st.expander(t("computes.region_title", rf=region.receptive_field[0], jump=region.jump[0]), expanded=False):
        left, _ = st.columns([2, 3])
        picture = picture_with_boxes(seen if seen.shape[-1] == 3 else seen[..., 0], [box], lang=language(), height=260)
        left.plotly_chart(picture, width="stretch", config=STILL, key=f"computes-region-{step.layer}")
        st.caption(t("computes.region", layer=step.layer, row=row, col=col, top=box[0], left=box[1], bottom=box[2],
                     right=box[3], height=region.input_side[0], width=region.input_side[1]))


# --- Shared ---------------------------------------------------------------------------------------------------------

def _position(step: compute.Step, playing: bool) -> tuple[int, int]:
    """The output cell: from the sliders, a click on the map, or the autoplay's next cell."""
    height, width = step.output_shape[:2]
    row_key, col_key, click_key = (f"computes-{what}-{step.layer}" for what in ("row", "col", "click"))
    points = ((st.session_state.get(click_key) or {}).get("selection") or {}).get("points") or []
    if points and st.session_state.get(f"{click_key}-used") != points:
        st.session_state[f"{click_key}-used"] = points
        row, col = int(round(points[0].get("y", 0))), int(round(points[0].get("x", 0)))  # the cell's centre
        st.session_state[row_key], st.session_state[col_key] = min(max(row, 0), height - 1), min(max(col, 0), width - 1)
    elif playing:
        at = (st.session_state.get(row_key, 0) * width + st.session_state.get(col_key, 0) + 1) % (height * width)
        st.session_state[row_key], st.session_state[col_key] = divmod(at, width)
    row_col, col_col = st.columns(2)
    row = row_col.slider(t("computes.row"), 0, height - 1, key=row_key) if height > 1 else 0
    col = col_col.slider(t("computes.col"), 0, width - 1, key=col_key) if width > 1 else 0
    return row, col


def _clickable_map(values: np.ndarray, cell: tuple[int, int], step: compute.Step) -> None:
    clickable = values.size <= CLICKABLE_CELLS
    figure = picture_with_boxes(values, [(*cell, *cell)], lang=language(), clickable=clickable)
    key = f"computes-click-{step.layer}"
    if clickable:
        st.plotly_chart(figure, width="stretch", config=STILL, key=key, on_select="rerun", selection_mode="points")
        st.caption(t("computes.click"))
    else:
        st.plotly_chart(figure, width="stretch", config=STILL, key=f"{key}-map")


def _channel_slider(step: compute.Step) -> int:
    channels = step.output_shape[-1]
    return st.slider(t("computes.channel_pick"), 0, channels - 1, 0, key=f"computes-channel-{step.layer}") \
        if channels > 1 else 0


def _cell_index(step: compute.Step) -> tuple[int, ...]:
    if len(step.output_shape) == 3:
        row, col = _position(step, False)
        return row, col, _channel_slider(step)
    return (st.slider(t("computes.unit"), 0, step.output_shape[-1] - 1, 0, key=f"computes-unit-{step.layer}"),)


def _checked(key: str, value: float, model_value: float, matches: bool, **values) -> None:
    """The arithmetic's result beside the number the model computed: the same, to float precision."""
    if matches:
        st.success(t(key, value=_n(value), model=_n(model_value), **values))
    else:
        st.error(t("computes.differs", value=_n(value), model=_n(model_value)))


def _channel_picture(values: np.ndarray, channel: int) -> np.ndarray:
    """An RGB input as the picture it is; otherwise the channel whose products add the most."""
    return values if values.shape[-1] == 3 else values[..., channel]


def _network_input(model) -> str | None:
    """The last preprocessing layer: its output is what the first convolution reads."""
    found = [step.layer for step in compute.steps(model) if step.kind == "preprocessing"]
    return found[-1] if found else None


def _shape(shape) -> str:
    return "x".join(map(str, shape))


def _pixels(indices) -> str:
    shown = ", ".join(map(str, indices[:8]))
    return shown + (", ..." if len(indices) > 8 else "")


def _n(value) -> str:
    return f"{float(value) + 0.0:.4g}"  # + 0.0: a zero is written 0, never -0


# --- The output-size tab ----------------------------------------------------------------------------------------------

def sizes_panel() -> None:
    """Every layer's output size for a network at an input size, with its formula; where its first
    windows do not fit, the input that fits; and a calculator."""
    st.markdown(t("computes.sizes_intro"))
    arch_col, size_col = st.columns(2)
    name = arch_col.selectbox(t("computes.arch"), cnnlab.list_architectures(zoo=False), format_func=arch_title,
                              key="computes-size-arch")
    arch = cnnlab.get_architecture(name)
    size = size_col.number_input(t("computes.input_size"), arch.min_input_size, MAX_INPUT_SIZE, arch.input_size,
                                 key=f"computes-size-{name}")
    with refusal(stop=False):
        rows = sizes.explain_sizes(name, input_size=int(size))
        st.dataframe({t("computes.column.layer"): [r.name for r in rows],
                      t("computes.column.type"): [r.type for r in rows],
                      t("computes.column.before"): [_shape(r.input_shape) for r in rows],
                      t("computes.column.after"): [_shape(r.output_shape) for r in rows],
                      t("computes.column.how"): [how(r) for r in rows]}, hide_index=True, width="stretch")
        unfit = next((r for r in rows if r.kind == "window" and not r.height.exact), None)
        if unfit is not None:
            step, fitted = unfit.height, sizes.fitting_input(unfit.height)
            st.warning(t("computes.not_exact", layer=unfit.name, n=step.n, quotient=f"{step.quotient:g}", out=step.out,
                         count=len(step.dropped), fits=fitted.n, fitted=fitted.out))
        if i18n.has(f"computes.paper.{name}"):
            st.info(t(f"computes.paper.{name}"))
    calculator()


def how(row: sizes.SizeRow) -> str:
    """One layer-table row's rule, with its numbers."""
    if row.kind == "window":
        if row.height == row.width or row.width is None:
            return formula(t("computes.side"), row.height)
        return t("computes.two_axes", height=formula(t("computes.height"), row.height),
                 width=formula(t("computes.width"), row.width))
    values = {"flatten": lambda: dict(values=int(np.prod(row.input_shape)), shape=_shape(row.input_shape)),
              "dense": lambda: dict(units=row.channels, inputs=int(np.prod(row.input_shape))),
              "global": lambda: dict(channels=row.channels),
              "pad": lambda: dict(top=row.border[0][0], bottom=row.border[0][1], left=row.border[1][0],
                                  right=row.border[1][1]),
              "crop": lambda: dict(top=row.border[0][0], bottom=row.border[0][1], left=row.border[1][0],
                                   right=row.border[1][1]),
              "resize": lambda: dict(height=row.size[0], width=row.size[1]),
              "concat": lambda: dict(parts=" + ".join(map(str, row.parts)), channels=row.channels)}
    return t(f"computes.how.{row.kind}", **values.get(row.kind, dict)())


def calculator() -> None:
    """⌊(n + 2p − k) / s⌋ + 1 for any numbers, with what the floor drops, and the settings that cannot work."""
    st.subheader(t("computes.calculator"))
    n_col, k_col, s_col, p_col = st.columns(4)
    n = n_col.slider(t("computes.calc_input"), 1, 256, 224, key="computes-calc-n")
    k = k_col.slider(t("computes.calc_kernel"), 1, 15, 11, key="computes-calc-k")
    stride = s_col.slider(t("computes.calc_stride"), 1, 8, 4, key="computes-calc-s")
    padding = p_col.radio(t("computes.calc_padding"), sizes.PADDINGS, key="computes-calc-p")
    with refusal(stop=False):
        step = sizes.output_size(n, k, stride, padding)
        st.markdown(formula(t("computes.side"), step))
        if stride > k:
            st.warning(t("computes.gaps", stride=stride, kernel=k))
