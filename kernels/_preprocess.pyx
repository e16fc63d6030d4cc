"""C loops that letterbox decoded frames into a float32 NCHW network batch.

Only ``streamface.kernels.preprocess`` calls this module; it checks every frame
and the output buffer and works out each frame's geometry first.

The resize reproduces ``cv2.resize(..., interpolation=INTER_LINEAR)`` on uint8
(half-pixel centres, 11-bit fixed-point weights, OpenCV's rounding of the
vertical pass), so an RGB frame gives the same values as OpenCV's resize
followed by the same normalisation. YUV 4:2:0 frames are read plane by plane
where they lie: each of a bilinear sample's four taps is converted to RGB with
libswscale's arithmetic (its chroma from the 2x2 block it belongs to), then the
taps are blended exactly as for an RGB frame; so a YUV frame gives what PyAV's
``to_ndarray(format="rgb24")`` followed by the RGB path gives.
"""

import numpy as np

from cython.parallel cimport prange
from libc.math cimport floorf, lrintf
from libc.stdint cimport int32_t, uint8_t
from libc.stdlib cimport free, malloc

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int sf_preprocess_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int sf_preprocess_max_threads(void) { return 1; }
    #endif
    """
    int sf_preprocess_max_threads() noexcept nogil


def default_threads():
    """OpenMP's default team size (``OMP_NUM_THREADS`` or the core count); 1 without OpenMP."""
    return sf_preprocess_max_threads()


cdef enum:
    # OpenCV's INTER_RESIZE_COEF_BITS: bilinear weights are multiples of 1/2048.
    COEF_BITS = 11
    COEF_SCALE = 1 << COEF_BITS
    # Chroma 128 in the converter's 8x scale.
    CHROMA_ZERO = 128 << 3
    KIND_RGB = 0
    KIND_YUV420 = 1
    # Columns of the per-frame horizontal table.
    TAB_X0 = 0
    TAB_X1 = 1
    TAB_A0 = 2
    TAB_A1 = 3


# Rows are handed out in small chunks, not split in halves up front: when
# another process takes a core, the thread still running picks up the rest
# instead of waiting at the end of the loop for the descheduled one.
cdef enum:
    ROW_CHUNK = 8


cdef struct Source:
    int kind
    const uint8_t* p0          # RGB pixels, or the Y plane
    const uint8_t* p1          # U plane (YUV only)
    const uint8_t* p2          # V plane (YUV only)
    Py_ssize_t s0, s1, s2      # row strides in bytes
    int width, height          # the frame
    int out_w, out_h           # its resized size inside the batch
    int off_x, off_y           # where the resized frame starts
    int y_offset               # 16 * 8 for limited range, 0 for full range
    int y_coeff, vr, ug, vg, ub  # YUV -> RGB coefficients, multiples of 1/8192
    double scale_y             # source rows per output row
    const int32_t* xtab        # out_w rows of (x0, x1, alpha0, alpha1)


cdef inline uint8_t _clip_u8(int v) noexcept nogil:
    return <uint8_t>(0 if v < 0 else (255 if v > 255 else v))


cdef inline void _yuv_to_rgb(const Source* s, Py_ssize_t x, Py_ssize_t y, int* rgb) noexcept nogil:
    """RGB of pixel (x, y) of a YUV 4:2:0 frame, its chroma from the pixel's 2x2 block.

    The arithmetic of libswscale's x86 converter (what PyAV's
    ``to_ndarray(format="rgb24")`` runs): samples scaled by 8, 13-bit
    coefficients, each product's high 16 bits kept (rounded down).
    """
    cdef int luma = (((s.p0[y * s.s0 + x] << 3) - s.y_offset) * s.y_coeff) >> 16
    cdef int u = (s.p1[(y >> 1) * s.s1 + (x >> 1)] << 3) - CHROMA_ZERO
    cdef int v = (s.p2[(y >> 1) * s.s2 + (x >> 1)] << 3) - CHROMA_ZERO
    rgb[0] = _clip_u8(luma + ((v * s.vr) >> 16))
    rgb[1] = _clip_u8(luma + ((u * s.ug) >> 16) + ((v * s.vg) >> 16))
    rgb[2] = _clip_u8(luma + ((u * s.ub) >> 16))


cdef inline int _blend(int b0, int h0, int b1, int h1) noexcept nogil:
    """OpenCV's SIMD vertical pass: inputs pre-shifted by 4, the high 16 bits of
    each product kept, the sum rounded by 2 bits."""
    return _clip_u8((((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2)


cdef inline void _row_weights(const Source* s, Py_ssize_t dy, int* rows, int* weights) noexcept nogil:
    """Source rows and 11-bit weights of output row ``dy`` (OpenCV's vertical taps)."""
    cdef float fy = <float>((dy + 0.5) * s.scale_y - 0.5)
    cdef int sy = <int>floorf(fy)
    fy -= sy
    # OpenCV keeps fy at the top/bottom edges and clamps the rows instead.
    weights[0] = <int>lrintf((1.0 - fy) * COEF_SCALE)
    weights[1] = <int>lrintf(fy * COEF_SCALE)
    rows[0] = 0 if sy < 0 else (s.height - 1 if sy > s.height - 1 else sy)
    rows[1] = 0 if sy + 1 < 0 else (s.height - 1 if sy + 1 > s.height - 1 else sy + 1)


cdef void _resize_row_rgb(const Source* s, Py_ssize_t dy, float** dst, const float* mean,
                          const float* scale) noexcept nogil:
    """Output row ``dy`` of a packed RGB frame; ``dst``/``mean``/``scale`` by source channel."""
    cdef int rows[2]
    cdef int b[2]
    cdef const uint8_t* top
    cdef const uint8_t* bottom
    cdef const int32_t* tab
    cdef Py_ssize_t dx, x0, x1
    cdef int a0, a1, ch, h0, h1
    _row_weights(s, dy, rows, b)
    top = s.p0 + rows[0] * s.s0
    bottom = s.p0 + rows[1] * s.s0
    for dx in range(s.out_w):
        tab = s.xtab + dx * 4
        x0 = tab[TAB_X0] * 3
        x1 = tab[TAB_X1] * 3
        a0 = tab[TAB_A0]
        a1 = tab[TAB_A1]
        for ch in range(3):
            h0 = top[x0 + ch] * a0 + top[x1 + ch] * a1
            # A zero weight (exact 2x/3x... downscales) saves the second row's reads.
            h1 = bottom[x0 + ch] * a0 + bottom[x1 + ch] * a1 if b[1] else 0
            dst[ch][dx] = (<float>_blend(b[0], h0, b[1], h1) - mean[ch]) * scale[ch]


cdef void _resize_row_yuv(const Source* s, Py_ssize_t dy, float** dst, const float* mean,
                          const float* scale) noexcept nogil:
    """Output row ``dy`` of a YUV 4:2:0 frame: each tap converted, then blended as RGB."""
    cdef int rows[2]
    cdef int b[2]
    cdef int tl[3]
    cdef int tr[3]
    cdef int bl[3]
    cdef int br[3]
    cdef const int32_t* tab
    cdef Py_ssize_t dx, x0, x1
    cdef int a0, a1, ch, h0, h1
    _row_weights(s, dy, rows, b)
    # A skipped tap keeps an old value, harmless since its weight is zero.
    tr[0] = tr[1] = tr[2] = br[0] = br[1] = br[2] = bl[0] = bl[1] = bl[2] = 0
    for dx in range(s.out_w):
        tab = s.xtab + dx * 4
        x0 = tab[TAB_X0]
        x1 = tab[TAB_X1]
        a0 = tab[TAB_A0]
        a1 = tab[TAB_A1]
        # Taps with zero weight are not converted: at exact integer downscales
        # (1080p -> 640x360) only one of the four is needed.
        _yuv_to_rgb(s, x0, rows[0], tl)
        if a1:
            _yuv_to_rgb(s, x1, rows[0], tr)
        if b[1]:
            _yuv_to_rgb(s, x0, rows[1], bl)
            if a1:
                _yuv_to_rgb(s, x1, rows[1], br)
        for ch in range(3):
            h0 = tl[ch] * a0 + tr[ch] * a1
            h1 = bl[ch] * a0 + br[ch] * a1
            dst[ch][dx] = (<float>_blend(b[0], h0, b[1], h1) - mean[ch]) * scale[ch]


cdef void _fill(float* dst, Py_ssize_t n, float value) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        dst[i] = value


cdef void _letterbox_row(const Source* s, Py_ssize_t y, float* frame_out, Py_ssize_t out_h,
                         Py_ssize_t out_w, const int* order, const float* mean,
                         const float* scale, const float* pad) noexcept nogil:
    """Batch row ``y`` of one frame: padding around the resized frame's row, if any.

    ``mean``, ``scale`` and ``pad`` are per output channel; output channel c
    takes source (RGB) channel ``order[c]``.
    """
    cdef float* dst[3]
    cdef float src_mean[3]
    cdef float src_scale[3]
    cdef float* plane
    cdef int ch
    cdef Py_ssize_t right = s.off_x + s.out_w
    for ch in range(3):
        plane = frame_out + (ch * out_h + y) * out_w
        if y < s.off_y or y >= s.off_y + s.out_h:
            _fill(plane, out_w, pad[ch])
            continue
        _fill(plane, s.off_x, pad[ch])
        _fill(plane + right, out_w - right, pad[ch])
        # Index by source channel so the inner loops need no reordering.
        dst[order[ch]] = plane + s.off_x
        src_mean[order[ch]] = mean[ch]
        src_scale[order[ch]] = scale[ch]
    if y < s.off_y or y >= s.off_y + s.out_h:
        return
    if s.kind == KIND_RGB:
        _resize_row_rgb(s, y - s.off_y, dst, src_mean, src_scale)
    else:
        _resize_row_yuv(s, y - s.off_y, dst, src_mean, src_scale)


cdef void _x_table(int width, int out_w, int32_t* tab) noexcept nogil:
    """OpenCV's horizontal taps and weights for resizing ``width`` to ``out_w`` pixels."""
    cdef double scale_x = 1.0 / (<double>out_w / width)
    cdef float fx
    cdef int sx, dx
    for dx in range(out_w):
        fx = <float>((dx + 0.5) * scale_x - 0.5)
        sx = <int>floorf(fx)
        fx -= sx
        # Outside the frame the nearest edge pixel is taken with full weight.
        if sx < 0:
            fx = 0
            sx = 0
        if sx >= width - 1:
            fx = 0
            sx = width - 1
        tab[dx * 4 + TAB_X0] = sx
        tab[dx * 4 + TAB_X1] = sx + 1 if sx + 1 < width else sx
        tab[dx * 4 + TAB_A0] = <int32_t>lrintf((1.0 - fx) * COEF_SCALE)
        tab[dx * 4 + TAB_A1] = <int32_t>lrintf(fx * COEF_SCALE)


def letterbox(list planes, const int32_t[:, ::1] geometry, float[:, :, :, ::1] out,
              const float[::1] mean, const float[::1] scale, const float[::1] pad,
              bint bgr, int threads):
    """Resize and pad each frame into ``out[i]`` (3, H, W), normalised.

    ``planes[i]`` is ``(rgb,)`` with rgb (h, w*3), or ``(y, u, v)``; 2-D uint8
    arrays with unit column stride. ``geometry[i]`` holds kind, width, height,
    out_w, out_h, off_x, off_y, y_offset, y_coeff, vr, ug, vg, ub.
    """
    cdef Py_ssize_t n = len(planes), H = out.shape[2], W = out.shape[3], i, r, f
    cdef int order[3]
    cdef Source* sources
    cdef int32_t[:, ::1] xtab
    cdef Py_ssize_t total_w = 0
    if n == 0:
        return
    for i in range(n):
        total_w += geometry[i, 3]
    xtab = np.empty((total_w, 4), dtype=np.int32)
    for i in range(3):
        order[i] = 2 - i if bgr else i
    sources = <Source*>malloc(n * sizeof(Source))
    if sources == NULL:
        raise MemoryError()
    try:
        total_w = 0
        for i in range(n):
            _describe(&sources[i], planes[i], geometry, i)
            sources[i].xtab = &xtab[total_w, 0]
            total_w += geometry[i, 3]
        with nogil:
            for i in range(n):
                _x_table(sources[i].width, sources[i].out_w, <int32_t*>sources[i].xtab)
            for r in prange(n * H, num_threads=threads, schedule="dynamic", chunksize=ROW_CHUNK):
                f = r // H
                _letterbox_row(&sources[f], r - f * H, &out[f, 0, 0, 0], H, W, order,
                               &mean[0], &scale[0], &pad[0])
    finally:
        free(sources)


cdef void _describe(Source* s, tuple frame_planes, const int32_t[:, ::1] g, Py_ssize_t i):
    """Fill ``s`` from frame ``i``'s planes and geometry row (GIL held)."""
    cdef const uint8_t[:, :] view
    s.kind = g[i, 0]
    s.width = g[i, 1]
    s.height = g[i, 2]
    s.out_w = g[i, 3]
    s.out_h = g[i, 4]
    s.off_x = g[i, 5]
    s.off_y = g[i, 6]
    s.y_offset = g[i, 7]
    s.y_coeff = g[i, 8]
    s.vr = g[i, 9]
    s.ug = g[i, 10]
    s.vg = g[i, 11]
    s.ub = g[i, 12]
    s.scale_y = 1.0 / (<double>s.out_h / s.height)
    view = frame_planes[0]
    s.p0 = &view[0, 0]
    s.s0 = view.strides[0]
    s.p1 = s.p2 = NULL
    s.s1 = s.s2 = 0
    if s.kind == KIND_YUV420:
        view = frame_planes[1]
        s.p1 = &view[0, 0]
        s.s1 = view.strides[0]
        view = frame_planes[2]
        s.p2 = &view[0, 0]
        s.s2 = view.strides[0]
