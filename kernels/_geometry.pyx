"""C loops for face geometry: similarity fit, aligned warps and seed-style crops.

Only ``streamface.kernels.geometry`` calls these functions; it checks every
array (dtype, shape, contiguity, sizes) first, so the loops here trust their
arguments and never check bounds per pixel.

Two pixel pipelines are reproduced to the bit, because the references the
tests and the seed's data were made with are those libraries:

* the aligned warp follows OpenCV's ``warpAffine`` (INTER_LINEAR,
  BORDER_CONSTANT 0; OpenCV >= 4.11 computes it in single precision);
* the face crop shrink follows Pillow's Lanczos resampling (what the seed's
  ``thumbnail`` used): separable passes, horizontal first, 22-bit weights,
  intermediate rounded to uint8.
"""

import numpy as np

from cython.parallel cimport prange
from libc.math cimport M_PI, ceil, fabs, fabsf, lrintf, sin
from libc.stdint cimport int32_t, uint8_t
from libc.string cimport memcpy, memset

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int sf_geometry_max_threads(void) { return omp_get_max_threads(); }
    static int sf_geometry_thread_id(void) { return omp_get_thread_num(); }
    #else
    static int sf_geometry_max_threads(void) { return 1; }
    static int sf_geometry_thread_id(void) { return 0; }
    #endif
    """
    int sf_geometry_max_threads() noexcept nogil
    int sf_geometry_thread_id() noexcept nogil


cdef inline int _thread_id() noexcept nogil:
    return sf_geometry_thread_id()


def default_threads():
    """OpenMP's default team size (``OMP_NUM_THREADS`` or the core count); 1 without OpenMP."""
    return sf_geometry_max_threads()


# --------------------------------------------------------------------------- similarity fit

cdef bint _fit_similarity(const double* src, const double* dst, Py_ssize_t k,
                          double* m) noexcept nogil:
    """Least-squares similarity [[a, -b, tx], [b, a, ty]] taking ``src`` onto ``dst``.

    In 2-D, Umeyama's rotation + uniform scale fit without reflection is the
    linear least-squares problem in (a, b, tx, ty), so it has this closed
    form. Returns False (``m`` all zero) when ``src`` has no spread or a value
    is not finite: no similarity is defined then.
    """
    cdef Py_ssize_t i
    cdef double msx = 0.0, msy = 0.0, mdx = 0.0, mdy = 0.0
    cdef double var = 0.0, sa = 0.0, sb = 0.0, sx, sy, dx, dy, a, b
    for i in range(6):
        m[i] = 0.0
    for i in range(k):
        msx += src[2 * i]
        msy += src[2 * i + 1]
        mdx += dst[2 * i]
        mdy += dst[2 * i + 1]
    msx /= k
    msy /= k
    mdx /= k
    mdy /= k
    for i in range(k):
        sx = src[2 * i] - msx
        sy = src[2 * i + 1] - msy
        dx = dst[2 * i] - mdx
        dy = dst[2 * i + 1] - mdy
        var += sx * sx + sy * sy
        sa += sx * dx + sy * dy
        sb += sx * dy - sy * dx
    # "not (x > 0)" is also true for NaN, so non-finite input lands here too.
    if not (var > 0.0) or not (fabs(sa) < 1e300) or not (fabs(sb) < 1e300):
        return False
    a = sa / var
    b = sb / var
    m[0] = a
    m[1] = -b
    m[2] = mdx - (a * msx - b * msy)
    m[3] = b
    m[4] = a
    m[5] = mdy - (b * msx + a * msy)
    if not (fabs(m[2]) < 1e300) or not (fabs(m[5]) < 1e300):
        for i in range(6):
            m[i] = 0.0
        return False
    return True


cdef bint _invert_affine(const double* m, double* inv) noexcept nogil:
    """Inverse of a 2x3 affine map, computed the way ``cv2.warpAffine`` does it."""
    cdef double det = m[0] * m[4] - m[1] * m[3]
    if not (fabs(det) > 0.0) or not (fabs(det) < 1e300):
        return False
    det = 1.0 / det
    inv[0] = m[4] * det
    inv[1] = -m[1] * det
    inv[3] = -m[3] * det
    inv[4] = m[0] * det
    inv[2] = -inv[0] * m[2] - inv[1] * m[5]
    inv[5] = -inv[3] * m[2] - inv[4] * m[5]
    return True


def similarity_transforms(const double[:, :, ::1] src, const double[:, ::1] dst,
                          double[:, :, ::1] out):
    """Fit one similarity per row of ``src`` (N, K, 2) onto ``dst`` (K, 2) into ``out`` (N, 2, 3)."""
    cdef Py_ssize_t n = src.shape[0], k = src.shape[1], i
    with nogil:
        for i in range(n):
            _fit_similarity(&src[i, 0, 0], &dst[0, 0], k, &out[i, 0, 0])


# --------------------------------------------------------------------------- aligned warp

# Coordinates beyond this (in pixels) are outside any image; they are never
# converted to integers (that would overflow, or be undefined for NaN).
cdef float COORD_LIMIT = 1e9
# Below this many output pixels (about five 112x112 faces; for a crop, first
# pass pixels) a second thread costs more in start-up and waiting than it saves.
cdef Py_ssize_t PARALLEL_MIN_PIXELS = 1 << 16
# Rows are handed out in small chunks, not split in halves up front: when
# another process takes a core, the thread still running picks up the rest
# instead of waiting at the end of the loop for the descheduled one.
cdef enum:
    ROW_CHUNK = 8


cdef inline float _fused(float a, float b, float c) noexcept nogil:
    """a * b + c rounded once, like an FMA instruction.

    The product of two floats is exact in double, so only the final rounding
    to float remains (a double rounding that practically never differs).
    """
    return <float>(<double>a * b + c)


cdef inline float _row_term(Py_ssize_t y, float m, float t) noexcept nogil:
    """float(y * m) + t in single precision, each step rounded (OpenCV's per-row term)."""
    cdef float product = <float>(<double>y * m)
    return <float>(<double>product + t)


cdef inline Py_ssize_t _floor(float v) noexcept nogil:
    """floor for |v| < COORD_LIMIT, without a libm call (no SSE4.1 round on baseline x86-64)."""
    cdef Py_ssize_t i = <Py_ssize_t>v
    return i - (v < i)


cdef inline void _warp_pixel(const uint8_t* img, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c,
                             float sx, float sy, uint8_t* px) noexcept nogil:
    """Bilinear sample at (sx, sy) in image pixels; taps outside the image read 0."""
    cdef Py_ssize_t ix = _floor(sx), iy = _floor(sy)
    cdef float ax = sx - ix, ay = sy - iy, top, bottom
    cdef Py_ssize_t ch, stride = w * c
    cdef const uint8_t* p00
    cdef bint in00, in01, in10, in11
    cdef float v00, v01, v10, v11
    if ix >= w or ix + 1 < 0 or iy >= h or iy + 1 < 0:
        memset(px, 0, c)
        return
    if ix >= 0 and ix + 1 < w and iy >= 0 and iy + 1 < h:
        p00 = img + iy * stride + ix * c
        if c == 3:
            _lerp3(p00, p00 + stride, ax, ay, px)
            return
        for ch in range(c):
            top = _fused(ax, <float>p00[ch + c] - p00[ch], p00[ch])
            bottom = _fused(ax, <float>p00[ch + stride + c] - p00[ch + stride], p00[ch + stride])
            px[ch] = _round_u8(_fused(ay, bottom - top, top))
        return
    # Border pixel: each tap on its own, the ones outside are the constant 0.
    in00 = ix >= 0 and iy >= 0
    in01 = ix + 1 < w and iy >= 0
    in10 = ix >= 0 and iy + 1 < h
    in11 = ix + 1 < w and iy + 1 < h
    for ch in range(c):
        v00 = img[iy * stride + ix * c + ch] if in00 else 0
        v01 = img[iy * stride + (ix + 1) * c + ch] if in01 else 0
        v10 = img[(iy + 1) * stride + ix * c + ch] if in10 else 0
        v11 = img[(iy + 1) * stride + (ix + 1) * c + ch] if in11 else 0
        top = _fused(ax, v01 - v00, v00)
        bottom = _fused(ax, v11 - v10, v10)
        px[ch] = _round_u8(_fused(ay, bottom - top, top))


cdef inline void _lerp3(const uint8_t* upper, const uint8_t* lower, float ax, float ay,
                        uint8_t* px) noexcept nogil:
    """Bilinear blend of an RGB 2x2 block; the first two lerps are exact in double
    (float weight times a 9-bit difference), so one rounding to float makes them
    equal to OpenCV's fused multiply-adds."""
    cdef double wx = ax, wy = ay
    cdef float top, bottom
    cdef int ch
    for ch in range(3):
        top = <float>(wx * (upper[ch + 3] - upper[ch]) + upper[ch])
        bottom = <float>(wx * (lower[ch + 3] - lower[ch]) + lower[ch])
        px[ch] = _round_u8(<float>(wy * (bottom - top) + top))


cdef inline uint8_t _round_u8(float v) noexcept nogil:
    """Round half to even (the CPU's default, as OpenCV's v_round) and saturate."""
    cdef long r = lrintf(v)
    return <uint8_t>(0 if r < 0 else (255 if r > 255 else r))


cdef void _warp_row(const uint8_t* img, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c,
                    const double* inv, Py_ssize_t size, Py_ssize_t y, uint8_t* row) noexcept nogil:
    """One output row of the inverse-mapped warp, ``inv`` mapping output to image pixels.

    Single-precision arithmetic in the order of OpenCV >= 4.11's warpAffine
    (row term rounded, column term fused, interpolation fused), so a pixel
    matches ``cv2.warpAffine`` for the same matrix.
    """
    cdef Py_ssize_t x
    cdef float m0 = <float>inv[0], m3 = <float>inv[3]
    cdef float row_x = _row_term(y, <float>inv[1], <float>inv[2])
    cdef float row_y = _row_term(y, <float>inv[4], <float>inv[5])
    cdef float sx, sy
    for x in range(size):
        sx = _fused(m0, <float>x, row_x)
        sy = _fused(m3, <float>x, row_y)
        # Written so that NaN fails the test and lands in the zero branch.
        if fabsf(sx) < COORD_LIMIT and fabsf(sy) < COORD_LIMIT:
            _warp_pixel(img, h, w, c, sx, sy, row + x * c)
        else:
            memset(row + x * c, 0, c)


def align(const uint8_t[:, :, ::1] image, const double[:, :, ::1] landmarks,
          const double[:, ::1] template, uint8_t[:, :, :, ::1] out, int threads):
    """Warp each face of ``image`` (H, W, C) onto ``template`` into ``out[:N]`` (N, S, S, C).

    A face whose landmarks define no similarity (no spread, not finite) is
    written as zeros.
    """
    cdef Py_ssize_t n = landmarks.shape[0], k = landmarks.shape[1]
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], c = image.shape[2]
    cdef Py_ssize_t size = out.shape[1], i, r, f, y
    if n == 0:
        return
    if n * size * size < PARALLEL_MIN_PIXELS:
        threads = 1
    cdef double[:, ::1] inverse = np.zeros((n, 6), dtype=np.float64)
    cdef uint8_t[::1] valid = np.zeros(n, dtype=np.uint8)
    cdef double m[6]
    with nogil:
        for i in range(n):
            if _fit_similarity(&landmarks[i, 0, 0], &template[0, 0], k, m):
                valid[i] = _invert_affine(m, &inverse[i, 0])
        for r in prange(n * size, num_threads=threads, schedule="dynamic", chunksize=ROW_CHUNK):
            f = r // size
            y = r - f * size
            if valid[f]:
                _warp_row(&image[0, 0, 0], h, w, c, &inverse[f, 0], size, y, &out[f, y, 0, 0])
            else:
                memset(&out[f, y, 0, 0], 0, size * c)


# --------------------------------------------------------------------------- face crop shrink

# Pillow's fixed point for 8-bit resampling: weights scaled by 1 << 22, so a
# 255 * weight sum stays inside int32 with room for negative Lanczos lobes.
cdef enum:
    PRECISION_BITS = 22
cdef double LANCZOS_SUPPORT = 3.0


cdef inline double _sinc(double x) noexcept nogil:
    if x == 0.0:
        return 1.0
    x = x * M_PI
    return sin(x) / x


cdef inline double _lanczos(double x) noexcept nogil:
    if -LANCZOS_SUPPORT <= x < LANCZOS_SUPPORT:
        return _sinc(x) * _sinc(x / LANCZOS_SUPPORT)
    return 0.0


cdef inline uint8_t _clip8(int32_t acc) noexcept nogil:
    # Pillow's accumulators are 32-bit too: 255 * (sum of |weights| < 1.3) << 22 fits.
    if acc >= (256 << PRECISION_BITS):
        return 255
    if acc <= 0:
        return 0
    return <uint8_t>(acc >> PRECISION_BITS)


cpdef Py_ssize_t lanczos_taps(Py_ssize_t in_size, Py_ssize_t out_size):
    """Kernel width (taps) of the Lanczos-3 filter shrinking ``in_size`` to ``out_size``."""
    cdef double scale = <double>in_size / out_size
    return <Py_ssize_t>ceil(LANCZOS_SUPPORT * (scale if scale > 1.0 else 1.0)) * 2 + 1


cdef void _lanczos_weights(Py_ssize_t in_size, Py_ssize_t out_size, Py_ssize_t ksize,
                           int32_t* bounds, int32_t* weights) noexcept nogil:
    """Per output pixel: first input pixel, tap count and fixed-point weights.

    The filter is stretched by the shrink factor (antialiasing); weights are
    normalised to sum 1 before rounding, as Pillow does.
    """
    cdef double scale = <double>in_size / out_size
    cdef double filterscale = scale if scale > 1.0 else 1.0
    cdef double support = LANCZOS_SUPPORT * filterscale
    cdef double center, total, wgt
    cdef Py_ssize_t xx, x, first, count
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        first = <Py_ssize_t>(center - support + 0.5)
        if first < 0:
            first = 0
        count = <Py_ssize_t>(center + support + 0.5)
        if count > in_size:
            count = in_size
        count -= first
        total = 0.0
        for x in range(count):
            total += _lanczos((x + first - center + 0.5) / filterscale)
        for x in range(ksize):
            weights[xx * ksize + x] = 0
        for x in range(count):
            wgt = _lanczos((x + first - center + 0.5) / filterscale)
            if total != 0.0:
                wgt /= total
            # Round half away from zero, like Pillow's normalize_coeffs_8bpc.
            if wgt < 0:
                weights[xx * ksize + x] = <int32_t>(-0.5 + wgt * (1 << PRECISION_BITS))
            else:
                weights[xx * ksize + x] = <int32_t>(0.5 + wgt * (1 << PRECISION_BITS))
        bounds[2 * xx] = <int32_t>first
        bounds[2 * xx + 1] = <int32_t>count


cdef void _shrink_row_x(const uint8_t* img, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c,
                        Py_ssize_t x0, Py_ssize_t fy, Py_ssize_t out_w, Py_ssize_t ksize,
                        const int32_t* bounds, const int32_t* weights,
                        uint8_t* dst) noexcept nogil:
    """Horizontal pass of one window row (frame row ``fy``, window starting at column ``x0``).

    Taps that fall outside the frame read zeros, and a zero tap adds nothing,
    so they are simply skipped; a row outside the frame comes out as zeros.
    """
    cdef Py_ssize_t xx, x, ch, lo, hi, first
    cdef int32_t acc0, acc1, acc2, k
    cdef const uint8_t* src
    cdef const uint8_t* p
    cdef const int32_t* kk
    if fy < 0 or fy >= h:
        memset(dst, 0, out_w * c)
        return
    src = img + fy * w * c
    for xx in range(out_w):
        first = bounds[2 * xx]
        kk = weights + xx * ksize
        # Window columns [lo, hi) are the taps that land inside the frame.
        lo = first if first + x0 >= 0 else -x0
        hi = first + bounds[2 * xx + 1]
        if hi + x0 > w:
            hi = w - x0
        if c == 3:
            # The three channels in one sweep over the taps: one read of each pixel.
            acc0 = acc1 = acc2 = 1 << (PRECISION_BITS - 1)
            for x in range(lo, hi):
                p = src + (x + x0) * 3
                k = kk[x - first]
                acc0 += p[0] * k
                acc1 += p[1] * k
                acc2 += p[2] * k
            dst[xx * 3] = _clip8(acc0)
            dst[xx * 3 + 1] = _clip8(acc1)
            dst[xx * 3 + 2] = _clip8(acc2)
        else:
            for ch in range(c):
                acc0 = 1 << (PRECISION_BITS - 1)
                for x in range(lo, hi):
                    acc0 += src[(x + x0) * c + ch] * kk[x - first]
                dst[xx * c + ch] = _clip8(acc0)


cdef void _copy_row(const uint8_t* img, Py_ssize_t h, Py_ssize_t w, Py_ssize_t c,
                    Py_ssize_t x0, Py_ssize_t fy, Py_ssize_t out_w, uint8_t* dst) noexcept nogil:
    """Copy one window row that needs no horizontal resampling (zeros outside the frame)."""
    cdef Py_ssize_t lo, hi
    memset(dst, 0, out_w * c)
    if fy < 0 or fy >= h:
        return
    lo = 0 if x0 >= 0 else -x0
    hi = out_w if x0 + out_w <= w else w - x0
    if hi > lo:
        memcpy(dst + lo * c, img + (fy * w + x0 + lo) * c, (hi - lo) * c)


cdef void _shrink_row_y(const uint8_t* tmp, Py_ssize_t row_bytes, Py_ssize_t ksize,
                        const int32_t* bounds, const int32_t* weights, Py_ssize_t yy,
                        Py_ssize_t first_row, int32_t* acc, uint8_t* dst) noexcept nogil:
    """Vertical pass: output row ``yy`` from the horizontally shrunk rows in ``tmp``.

    Whole rows are accumulated tap by tap (``acc`` holds one row of sums), so the
    inner loop runs along contiguous bytes and vectorises.
    """
    cdef Py_ssize_t i, y, first = bounds[2 * yy] - first_row, count = bounds[2 * yy + 1]
    cdef const int32_t* k = weights + yy * ksize
    cdef const uint8_t* src
    cdef int32_t weight
    for i in range(row_bytes):
        acc[i] = 1 << (PRECISION_BITS - 1)
    for y in range(count):
        src = tmp + (first + y) * row_bytes
        weight = k[y]
        for i in range(row_bytes):
            acc[i] += src[i] * weight
    for i in range(row_bytes):
        dst[i] = _clip8(acc[i])


def shrink_window(const uint8_t[:, :, ::1] image, Py_ssize_t x0, Py_ssize_t y0,
                  Py_ssize_t win_w, Py_ssize_t win_h, uint8_t[:, :, ::1] out, int threads):
    """Resample the window [x0, x0+win_w) x [y0, y0+win_h) of ``image`` into ``out``.

    Pixels of the window outside the image are zeros. ``out`` (oh, ow, C) must
    not be larger than the window; equal sizes copy, smaller ones shrink with
    Pillow's Lanczos filter (horizontal pass first, as Pillow does).
    """
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], c = image.shape[2]
    cdef Py_ssize_t out_h = out.shape[0], out_w = out.shape[1]
    cdef Py_ssize_t kx = lanczos_taps(win_w, out_w), ky = lanczos_taps(win_h, out_h)
    cdef int32_t[::1] bounds_x = np.zeros(2 * out_w, dtype=np.int32)
    cdef int32_t[::1] weights_x = np.zeros(out_w * kx, dtype=np.int32)
    cdef int32_t[::1] bounds_y = np.zeros(2 * out_h, dtype=np.int32)
    cdef int32_t[::1] weights_y = np.zeros(out_h * ky, dtype=np.int32)
    cdef bint resize_x = out_w != win_w, resize_y = out_h != win_h
    cdef Py_ssize_t first_row = 0, last_row = win_h, r, row_bytes = out_w * c
    cdef uint8_t[:, ::1] tmp
    if win_h * out_w < PARALLEL_MIN_PIXELS:
        threads = 1
    cdef int32_t[:, ::1] sums = np.empty((threads, row_bytes), dtype=np.int32)
    with nogil:
        _lanczos_weights(win_w, out_w, kx, &bounds_x[0], &weights_x[0])
        _lanczos_weights(win_h, out_h, ky, &bounds_y[0], &weights_y[0])
        if resize_y:
            # Only the window rows some output row reads need the first pass.
            first_row = bounds_y[0]
            last_row = bounds_y[2 * out_h - 2] + bounds_y[2 * out_h - 1]
    if resize_y:
        tmp = np.empty((last_row - first_row, row_bytes), dtype=np.uint8)
    else:
        tmp = np.asarray(out).reshape(out_h, row_bytes)
    with nogil:
        for r in prange(last_row - first_row, num_threads=threads, schedule="dynamic", chunksize=ROW_CHUNK):
            if resize_x:
                _shrink_row_x(&image[0, 0, 0], h, w, c, x0, y0 + first_row + r, out_w, kx,
                              &bounds_x[0], &weights_x[0], &tmp[r, 0])
            else:
                _copy_row(&image[0, 0, 0], h, w, c, x0, y0 + first_row + r, out_w, &tmp[r, 0])
        if resize_y:
            for r in prange(out_h, num_threads=threads, schedule="dynamic", chunksize=ROW_CHUNK):
                _shrink_row_y(&tmp[0, 0], row_bytes, ky, &bounds_y[0], &weights_y[0], r,
                              first_row, &sums[_thread_id(), 0], &out[r, 0, 0])
