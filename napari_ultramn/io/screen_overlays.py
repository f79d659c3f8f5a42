"""Static overlays drawn over an ultrasound image: text lines, calipers, markers.

Overlays are drawn at screen resolution in one colour; the image under them is scan-converted
(interpolated) from fewer scan lines than pixels. So an overlay stroke, 1-4 px wide, is far
brighter than the pixels 2-3 px to both sides of it, which speckle rarely is, and text lines are
dense in such strokes. Dense patches are split by colour into compact words (a word is about a
glyph tall, of one colour, in a band with clear rows above and below); a thin '+' whose arms
cross is a caliper. Each word is grown over neighbouring pixels of its colour (a 'T' bar over
bright tissue is no stroke), words on one line are joined, and their boxes are what
:func:`static_overlays` returns. Works on one frame; for a clip, pass the temporal minimum of
its frames, where moving speckle fades and overlays stay.
"""

from __future__ import annotations

import numpy as np

#: Overlay strokes: grey levels above the pixels 2-3 px to either side, and their share of a text-line
#: sized window (speckle reaches the contrast at < 1% of its pixels, text ink over it at 35-45%).
STROKE_CONTRAST = 40
STROKE_DENSITY = 0.06
MIN_STROKE_PIXELS = 4
#: Share of a word's box within a pixel of its overlay-coloured pixels (text ~0.4-0.8, a '+' ~0.17).
WORD_INK_SHARE = 0.12
MAX_COLOURS = 3  # overlay colours looked for per patch
BAND_SPILL = 0.25  # pixels of a word's colour just above and below it, per pixel of the word
COLOUR_TOLERANCE = 24  # grey levels: anti-aliasing and video compression blur an overlay's colour


def static_overlays(img: np.ndarray, text_px: float) -> np.ndarray:
    """``(h, w) bool``: boxes of text lines, calipers and markers drawn over ``img`` ``(h, w)``
    (uint8 grey), ``text_px`` being about one text line's height in pixels (module docstring)."""
    from scipy import ndimage as ndi

    f = img.astype(np.float32)
    d = max(2, round(text_px / 12))  # strokes of large fonts are 3-4 px wide
    p = np.pad(f, d, mode="edge")
    # Vertical strokes only, brighter than both sides: an area's edge (black on one side only)
    # is none, nor are skin and fascia, long horizontal bright lines; text is full of them.
    inner = slice(d, -d)
    across_cols = f - np.maximum(p[inner, : -2 * d], p[inner, 2 * d :])
    across_rows = f - np.maximum(p[: -2 * d, inner], p[2 * d :, inner])
    stroke = (across_cols >= STROKE_CONTRAST) & (f >= 120)
    # horizontal strokes only widen a box found from vertical ones (a caliper's arm, a 'T')
    ink = stroke | ((across_rows >= STROKE_CONTRAST) & (f >= 120))
    window = (max(3, round(0.6 * text_px)), max(5, round(1.2 * text_px)))
    dense = ndi.uniform_filter(stroke.astype(np.float32), window) > STROKE_DENSITY
    # grown by half a window: a line's last glyph sits where the density is already falling
    dense = ndi.maximum_filter(dense, window)
    # calipers: a thin vertical and a thin horizontal line that cross ('+')
    arm = max(5, round(0.4 * text_px))
    vertical = _line_opening(stroke, arm, axis=0)
    # the arm across may run over tissue nearly as bright: half the contrast, once a stroke crosses
    horizontal = _line_opening((across_rows >= STROKE_CONTRAST / 2) & (f >= 120), arm, axis=1)
    cross = ndi.maximum_filter(vertical, 3) & ndi.maximum_filter(horizontal, 3)
    # the crossing pixel itself has bright neighbours on all four sides: no stroke, but ink
    ink |= cross & (f >= 120)
    caliper = ndi.maximum_filter(cross, 2 * arm + 1) & (vertical | horizontal | cross)
    dense |= caliper
    boxes = np.zeros(img.shape, bool)
    labels, _ = ndi.label(dense, np.ones((3, 3), bool))
    gap = np.ones((3, max(3, 2 * round(text_px / 4) + 1)), bool)
    for i, (rows, cols) in enumerate(ndi.find_objects(labels), 1):
        patch = f[rows, cols]
        mine = (labels[rows, cols] == i) & ink[rows, cols]
        if np.count_nonzero(mine) < MIN_STROKE_PIXELS:
            continue
        # Colour by colour, brightest first (a caliper may touch a label of another colour):
        # pixels of that colour in compact words, each word one colour on its own, so bright
        # speckle strokes around a label (a phased array's apex) stay out.
        for _ in range(MAX_COLOURS):
            if np.count_nonzero(mine) < MIN_STROKE_PIXELS:
                break
            coloured = mine & (patch >= np.percentile(patch[mine], 90) - COLOUR_TOLERANCE)
            _accept_words(
                boxes, f, (rows, cols), mine, coloured, (caliper[rows, cols], cross[rows, cols]), gap, text_px
            )
            mine &= ~coloured
    return _line_boxes(boxes, text_px)


def _accept_words(boxes, f, window, mine, coloured, calipers, gap, text_px) -> None:
    """Mark the words of ``coloured`` (pixels of one colour in ``f[window]``) that are compact
    and of one colour among the strokes in their box, or that hold a caliper's crossing lines
    (a thin '+' over busy speckle is a small share of the strokes around it)."""
    from scipy import ndimage as ndi

    patch = f[window]
    caliper, crossing = calipers
    words, _ = ndi.label(ndi.binary_dilation(coloured, gap))
    for j, (wr, wc) in enumerate(ndi.find_objects(words), 1):
        ys, xs = np.nonzero(coloured[wr, wc] & (words[wr, wc] == j))
        # a word is about a glyph tall; a speckle cluster that passed is usually flatter
        if ys.size < MIN_STROKE_PIXELS or ys.max() - ys.min() + 1 < max(3, 0.35 * text_px):
            continue
        ys, xs = ys + wr.start, xs + wc.start
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        on_lines = np.count_nonzero(caliper[ys, xs])
        if on_lines >= max(0.35 * text_px, 0.5 * ys.size):  # a '+', not a label a line crosses
            # a '+' is symmetric: an arm lost over tissue of its grey is as long as the others
            cy, cx = (round(float(np.median(c))) for c in np.nonzero(crossing[box]))
            ay, ax = np.nonzero(caliper[box] & coloured[box])
            half = int(min(2 * text_px, max(np.abs(ay - cy).max(), np.abs(ax - cx).max())))
            cy, cx = cy + box[0].start, cx + box[1].start
            top, left = window[0].start + cy - half, window[1].start + cx - half
            boxes[max(0, top) : top + 2 * half + 1, max(0, left) : left + 2 * half + 1] = True
        else:
            area = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
            # share of the box within a pixel of the word's ink: a 1-px line counts as 3 px
            near_ink = np.count_nonzero(ndi.binary_dilation(coloured[box], np.ones((3, 3), bool)))
            if near_ink < WORD_INK_SHARE * area or not _one_colour(patch[box][mine[box]]):
                continue
            # a text line sits in a band with clear rows above and below it; streaks of bright
            # speckle (a sector's apex) run on past any band
            g = max(2, round(0.3 * text_px))
            above = coloured[max(0, box[0].start - g) : box[0].start, box[1]]
            below = coloured[box[0].stop : box[0].stop + g, box[1]]
            if np.count_nonzero(above) + np.count_nonzero(below) > BAND_SPILL * ys.size:
                continue
        _grow_word(boxes, f, window[0].start + ys, window[1].start + xs, text_px)


def _grow_word(boxes: np.ndarray, f: np.ndarray, ys: np.ndarray, xs: np.ndarray, text_px: float) -> None:
    """Mark the box of the word at pixels ``(ys, xs)`` of ``f``, grown over neighbouring pixels
    of its colour (a 'T' bar over bright tissue is no stroke but is the glyph's colour), by at
    most a third of a text height."""
    from scipy import ndimage as ndi

    reach = max(2, round(text_px / 3))
    t, l = max(0, ys.min() - reach), max(0, xs.min() - reach)  # noqa: E741
    window = f[t : ys.max() + 1 + reach, l : xs.max() + 1 + reach]
    word = np.zeros(window.shape, bool)
    word[ys - t, xs - l] = True
    same = np.abs(window - float(np.median(window[word]))) <= COLOUR_TOLERANCE
    # 4-connected: along a bar or a caliper's arm, not diagonally into speckle of that grey
    grown = ndi.binary_dilation(word, iterations=reach, mask=same) | word
    gy, gx = np.nonzero(grown)
    boxes[t + gy.min() : t + gy.max() + 1, l + gx.min() : l + gx.max() + 1] = True


def _line_boxes(words: np.ndarray, text_px: float) -> np.ndarray:
    """Words on one line (less than half a text height apart) and overlapping boxes (a caliper's
    two arms) become one box, widened to the ink around the strokes (a 'T' reaches past its stem)."""
    from scipy import ndimage as ndi

    h, w = words.shape
    pad_r, pad_c = 1, 1 + round(0.05 * text_px)
    reach = max(1, round(text_px / 2))
    lines, _ = ndi.label(ndi.maximum_filter(words, (1, 2 * reach + 1)))
    out = np.zeros(words.shape, bool)
    for i, (rows, cols) in enumerate(ndi.find_objects(lines), 1):
        ys, xs = np.nonzero(words[rows, cols] & (lines[rows, cols] == i))
        t, b = rows.start + ys.min() - pad_r, rows.start + ys.max() + 1 + pad_r
        l, r = cols.start + xs.min() - pad_c, cols.start + xs.max() + 1 + pad_c  # noqa: E741
        out[max(0, t) : min(h, b), max(0, l) : min(w, r)] = True
    for rows, cols in ndi.find_objects(ndi.label(out)[0]):
        out[rows, cols] = True
    return out


def _line_opening(mask: np.ndarray, length: int, axis: int) -> np.ndarray:
    """Binary opening with a straight line of ``length`` pixels along ``axis``: two running means
    (erosion = a window all True, dilation = any eroded pixel in the window), ~10x faster than
    ``binary_opening`` on full-resolution frames."""
    from scipy import ndimage as ndi

    run = ndi.uniform_filter1d(mask.astype(np.float32), length, axis=axis)
    eroded = run > 1 - 0.5 / length
    back = ndi.uniform_filter1d(eroded.astype(np.float32), length, axis=axis, origin=-1 if length % 2 == 0 else 0)
    return back > 0.5 / length


def _one_colour(values: np.ndarray) -> bool:
    """Overlays are drawn in one colour: most stroke pixels sit near the brightest ones
    (anti-aliased edges are darker); speckle strokes spread over the whole grey range."""
    top = np.percentile(values, 90)
    return bool(np.mean(values >= top - COLOUR_TOLERANCE) >= 0.4)
