# cython: language_level=3
"""C loops of the frame-quality kernels (blur score, frame similarity, emptiness).

Only ``streamface.kernels.quality`` calls into this module; it has already checked
every argument, so these functions trust shapes and ranges. Each public function
takes images as C-contiguous ``(H, W, C)`` uint8 arrays with C = 1 (grayscale) or
3 (RGB), releases the GIL for all pixel work, and spreads rows over OpenMP threads.

Exactness is by construction where OpenCV is exact:
- grayscale is OpenCV's 15-bit fixed-point RGB2GRAY formula (bit-exact),
- nearest-neighbour resize uses OpenCV's ``floor(x * (1 / (dst / src)))`` rule,
- the 3x3 Gaussian (sigma 0.5) replays OpenCV's 8-bit fixed-point path (bit-exact),
- the Laplacian and every sum are exact integers (OpenCV itself uses float32 there),
- Canny replays OpenCV's integer Sobel / non-maximum-suppression / hysteresis rules.
"""

from cython.parallel cimport prange
from libc.math cimport floor
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

import numpy as np

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int sf_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int sf_max_threads(void) { return 1; }
    #endif
    """
    int sf_max_threads() noexcept nogil

cdef extern from *:
    """
    /* RGB -> gray rows, OpenCV's 15-bit formula written with multiplications so the
       compiler vectorises it; an AVX2 build of the same loop is chosen at run time
       where the CPU has it (twice as fast as SSE2 on a 1080p frame, same bytes). */
    #include <stdint.h>
    #define SF_GRAY_LOOP                                                            \
        for (Py_ssize_t j = 0; j < n; j++)                                          \
            out[j] = (uint8_t)((rgb[3 * j] * 9798u + rgb[3 * j + 1] * 19235u       \
                                + rgb[3 * j + 2] * 3735u + 16384u) >> 15);
    static void sf_gray_row_base(const uint8_t* restrict rgb, Py_ssize_t n,
                                 uint8_t* restrict out) { SF_GRAY_LOOP }
    #if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __attribute__((target("avx2")))
    static void sf_gray_row_avx2(const uint8_t* restrict rgb, Py_ssize_t n,
                                 uint8_t* restrict out) { SF_GRAY_LOOP }
    static int sf_has_avx2(void) { __builtin_cpu_init(); return __builtin_cpu_supports("avx2"); }
    #else
    #define sf_gray_row_avx2 sf_gray_row_base
    static int sf_has_avx2(void) { return 0; }
    #endif
    """
    void sf_gray_row_base(const uint8_t* rgb, Py_ssize_t n, uint8_t* out) noexcept nogil
    void sf_gray_row_avx2(const uint8_t* rgb, Py_ssize_t n, uint8_t* out) noexcept nogil
    int sf_has_avx2() noexcept nogil


# ---------------------------------------------------------------------------
# Threads

# Rows handed to a thread at a time. Dynamic scheduling in small tasks keeps both
# threads busy when the machine is shared and one of them is slowed down.
cdef enum:
    ROWS_PER_TASK = 16


def default_threads():
    """OpenMP's default team size (``OMP_NUM_THREADS`` or the core count); 1 without OpenMP."""
    return max(sf_max_threads(), 1)


# ---------------------------------------------------------------------------
# Shared pixel helpers

# OpenCV's 8-bit RGB2GRAY: coefficients 0.299/0.587/0.114 in 15-bit fixed point
# (9798, 19235, 3735), rounded half up; bit-exact with cv2.cvtColor(COLOR_RGB2GRAY).
# The products come from three 256-entry tables (rounding folded into the first):
# table loads are cheaper than multiplications in this scalar, gather-bound code.
cdef uint32_t GRAY_R[256]
cdef uint32_t GRAY_G[256]
cdef uint32_t GRAY_B[256]
for _v in range(256):
    GRAY_R[_v] = _v * 9798 + 16384
    GRAY_G[_v] = _v * 19235
    GRAY_B[_v] = _v * 3735


cdef inline uint32_t _gray(const uint8_t* p) noexcept nogil:
    return (GRAY_R[p[0]] + GRAY_G[p[1]] + GRAY_B[p[2]]) >> 15


cdef inline int _reflect101(int p, int n) noexcept nogil:
    # cv::borderInterpolate(BORDER_REFLECT_101); a 1-pixel axis reflects onto itself.
    if n == 1:
        return 0
    while p < 0 or p >= n:
        p = -p if p < 0 else 2 * n - 2 - p
    return p


cdef void _nearest_offsets(int src_len, int dst_len, int scale, int32_t* out) noexcept nogil:
    # cv::resize INTER_NEAREST: sx = floor(dx * ifx) with ifx = 1 / (dst / src) in
    # double, clamped to the last pixel. Spelled the same way so rounding agrees.
    # Stored times ``scale`` (the channel count, for byte offsets into a row).
    cdef double ifx = 1.0 / (<double>dst_len / src_len)
    cdef int x, sx
    for x in range(dst_len):
        sx = <int>floor(x * ifx)
        out[x] = (sx if sx < src_len - 1 else src_len - 1) * scale


cdef void _sample_gray_row(const uint8_t* src_row, int channels, const int32_t* xofs,
                           Py_ssize_t n, uint8_t* out) noexcept nogil:
    # One row of gray(resize_nearest(image)); ``xofs`` holds byte offsets into the
    # row. Sampling first and converting only the sampled pixels gives the same
    # values as OpenCV's gray-then-resize.
    cdef Py_ssize_t j = 0
    cdef uint32_t g0, g1, g2, g3
    if channels == 1:
        for j in range(n):
            out[j] = src_row[xofs[j]]
        return
    # Four pixels per step with every load before the stores: a byte store may
    # alias anything, so interleaving them would serialise the gathers.
    while j + 4 <= n:
        g0 = _gray(src_row + xofs[j])
        g1 = _gray(src_row + xofs[j + 1])
        g2 = _gray(src_row + xofs[j + 2])
        g3 = _gray(src_row + xofs[j + 3])
        out[j] = <uint8_t>g0
        out[j + 1] = <uint8_t>g1
        out[j + 2] = <uint8_t>g2
        out[j + 3] = <uint8_t>g3
        j += 4
    while j < n:
        out[j] = <uint8_t>_gray(src_row + xofs[j])
        j += 1


# ---------------------------------------------------------------------------
# Blur score

# cv::GaussianBlur(3x3, sigma 0.5) on 8-bit images runs in 8-bit fixed point: the
# kernel exp(-x^2 / 2 sigma^2) normalised to [0.1065, 0.7870, 0.1065] is stored as
# [27, 202, 27] / 256 (edges rounded, centre takes the rest so the sum is 256), rows
# then columns are summed exactly and the 16-bit fraction is rounded half up.
cdef enum:
    G_EDGE = 27
    G_CENTRE = 202

# cv::Laplacian(ksize=11) is d2/dx2 + d2/dy2 = KS_y KD_x + KD_y KS_x with OpenCV's
# Sobel kernels KS = (1+z)^10 (binomial) and KD = (1+z)^8 (1-z)^2. Both contain the
# binomial S8 = (1+z)^8, so the whole 11x11 kernel factors into
#     2 * (S8_y S8_x) * D,   D = [[1, 0, 1], [0, -4, 0], [1, 0, 1]]:
# a 3x3 diagonal Laplacian, then a separable 9-tap binomial; 10 multiplications per
# pixel instead of 24. Applied to the reflect-101-extended image (radius 5) the
# factorisation is exact integer arithmetic, so the Laplacian is OpenCV's (which
# rounds it to float32 on the way).
cdef enum:
    LAP_R = 5
    S8_R = 4
    S8_0 = 70
    S8_1 = 56
    S8_2 = 28
    S8_3 = 8
    S8_4 = 1
# Row chunk kept in local (stack) buffers: the compiler then knows they alias
# nothing and vectorises without run-time overlap checks.
cdef enum:
    CHUNK = 256


def laplacian_factors():
    """``(s8, d)``: the ksize-11 Laplacian kernel is ``2 * outer(s8, s8) (*) d``."""
    s8 = [S8_4, S8_3, S8_2, S8_1, S8_0, S8_1, S8_2, S8_3, S8_4]
    d = [[1, 0, 1], [0, -4, 0], [1, 0, 1]]
    return s8, d


cdef void _gauss_row(const uint8_t* s, Py_ssize_t n, uint16_t* out) noexcept nogil:
    cdef Py_ssize_t j
    if n == 1:
        out[0] = <uint16_t>(256 * s[0])
        return
    out[0] = <uint16_t>(G_EDGE * 2 * s[1] + G_CENTRE * s[0])
    for j in range(1, n - 1):
        out[j] = <uint16_t>(G_EDGE * (s[j - 1] + s[j + 1]) + G_CENTRE * s[j])
    out[n - 1] = <uint16_t>(G_EDGE * 2 * s[n - 2] + G_CENTRE * s[n - 1])


cdef void _gauss_col(const uint16_t* up, const uint16_t* mid, const uint16_t* dn,
                     Py_ssize_t n, uint8_t* out) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        out[j] = <uint8_t>((G_EDGE * (<uint32_t>up[j] + dn[j]) + G_CENTRE * <uint32_t>mid[j]
                            + 32768) >> 16)


cdef void _pad_reflect(uint8_t* buf, int n, int r) noexcept nogil:
    # ``buf`` holds pixel j at index r + j, with r spare pixels on each side.
    cdef int j
    for j in range(1, r + 1):
        buf[r - j] = buf[r + _reflect101(-j, n)]
        buf[r + n - 1 + j] = buf[r + _reflect101(n - 1 + j, n)]


cdef void _diag_binomial_row(const uint8_t* up, const uint8_t* mid, const uint8_t* dn,
                             Py_ssize_t n, int32_t* out) noexcept nogil:
    # One row of S8_x * D on the extended image. ``up``/``mid``/``dn`` are rows of
    # the blurred image padded by LAP_R columns (index 0 is column -5); ``out`` gets
    # columns 0 .. n-1. D needs columns -4 .. n+3, i.e. padded indices 1 .. n+8.
    # |D| <= 4 * 255 fits int16; |S8_x * D| <= 256 * 1020 needs int32.
    cdef int16_t t[CHUNK + 2 * S8_R]
    cdef Py_ssize_t j0 = 0, j, c, m
    while j0 < n:
        m = min(<Py_ssize_t>CHUNK, n - j0)
        for j in range(m + 2 * S8_R):
            c = j0 + j + 1
            t[j] = <int16_t>(up[c - 1] + up[c + 1] + dn[c - 1] + dn[c + 1] - 4 * mid[c])
        for j in range(m):
            out[j0 + j] = (S8_0 * t[j + 4] + S8_1 * (t[j + 3] + t[j + 5])
                           + S8_2 * (t[j + 2] + t[j + 6]) + S8_3 * (t[j + 1] + t[j + 7])
                           + (t[j] + t[j + 8]))
        j0 += m


cdef void _binomial_col_stats(const int32_t* rows, Py_ssize_t stride, Py_ssize_t n,
                              int64_t* out_sum, double* out_sq) noexcept nogil:
    # S8 down the columns of the nine rows starting at ``rows`` (half the Laplacian,
    # |value| <= 256 * 256 * 1020 < 2**27), and the row's sum and sum of squares.
    cdef const int32_t* r0 = rows
    cdef const int32_t* r1 = rows + stride
    cdef const int32_t* r2 = rows + 2 * stride
    cdef const int32_t* r3 = rows + 3 * stride
    cdef const int32_t* r4 = rows + 4 * stride
    cdef const int32_t* r5 = rows + 5 * stride
    cdef const int32_t* r6 = rows + 6 * stride
    cdef const int32_t* r7 = rows + 7 * stride
    cdef const int32_t* r8 = rows + 8 * stride
    cdef int32_t lap[CHUNK]
    cdef Py_ssize_t j0 = 0, j, c, m
    cdef int64_t total = 0
    cdef double q0 = 0.0, q1 = 0.0, q2 = 0.0, q3 = 0.0
    cdef double v0, v1, v2, v3
    while j0 < n:
        m = min(<Py_ssize_t>CHUNK, n - j0)
        for j in range(m):
            c = j0 + j
            lap[j] = (S8_0 * r4[c] + S8_1 * (r3[c] + r5[c]) + S8_2 * (r2[c] + r6[c])
                      + S8_3 * (r1[c] + r7[c]) + (r0[c] + r8[c]))
        for j in range(m):
            total += lap[j]
        # Four partial sums: a single double accumulator would serialise on the
        # add latency (floating-point sums are not reordered for us). Squares are
        # below 2**53, so each term is exact.
        j = 0
        while j + 4 <= m:
            v0 = lap[j]
            v1 = lap[j + 1]
            v2 = lap[j + 2]
            v3 = lap[j + 3]
            q0 += v0 * v0
            q1 += v1 * v1
            q2 += v2 * v2
            q3 += v3 * v3
            j += 4
        while j < m:
            v0 = lap[j]
            q0 += v0 * v0
            j += 1
        j0 += m
    out_sum[0] = total
    out_sq[0] = (q0 + q1) + (q2 + q3)


def blur_score(const uint8_t[:, :, ::1] image, int out_w, int out_h,
               int x0, int y0, int x1, int y1, int nthreads):
    """Variance of Laplacian(ksize 11) of GaussianBlur(3x3, 0.5) of gray(image).

    The image is resized (nearest) to ``out_w x out_h`` (pass its own size for no
    resize), cropped to rows ``y0:y1`` and columns ``x0:x1``; BORDER_REFLECT_101.
    """
    cdef int h = image.shape[0], w = image.shape[1], channels = image.shape[2]
    cdef int cw = x1 - x0, ch = y1 - y0
    cdef int i
    cdef Py_ssize_t pad_stride = cw + 2 * LAP_R

    xofs_a = np.empty(out_w, np.int32)
    yofs_a = np.empty(out_h, np.int32)
    gray_a = np.empty((ch, cw), np.uint8)
    smooth_a = np.empty((ch, cw), np.uint16)
    blurred_a = np.empty((ch, pad_stride), np.uint8)
    # Rows -4 .. ch+3 of S8_x * D, the extension the vertical S8 reads.
    half_a = np.empty((ch + 2 * S8_R, cw), np.int32)
    sums_a = np.empty(ch, np.int64)
    sqs_a = np.empty(ch, np.float64)

    cdef int32_t[::1] xofs = xofs_a
    cdef int32_t[::1] yofs = yofs_a
    cdef uint8_t[:, ::1] gray = gray_a
    cdef uint16_t[:, ::1] smooth = smooth_a
    cdef uint8_t[:, ::1] blurred = blurred_a
    cdef int32_t[:, ::1] half = half_a
    cdef int64_t[::1] sums = sums_a
    cdef double[::1] sqs = sqs_a
    cdef const uint8_t* src = &image[0, 0, 0]
    cdef Py_ssize_t src_stride = <Py_ssize_t>w * channels
    cdef int64_t total = 0
    cdef double sq = 0.0, mean

    with nogil:
        _nearest_offsets(w, out_w, channels, &xofs[0])
        _nearest_offsets(h, out_h, 1, &yofs[0])
        for i in prange(ch, num_threads=nthreads, schedule="dynamic",
                        chunksize=ROWS_PER_TASK):
            _sample_gray_row(src + yofs[y0 + i] * src_stride, channels,
                             &xofs[x0], cw, &gray[i, 0])
            _gauss_row(&gray[i, 0], cw, &smooth[i, 0])
        for i in prange(ch, num_threads=nthreads, schedule="dynamic",
                        chunksize=ROWS_PER_TASK):
            _gauss_col(&smooth[_reflect101(i - 1, ch), 0], &smooth[i, 0],
                       &smooth[_reflect101(i + 1, ch), 0], cw, &blurred[i, LAP_R])
            _pad_reflect(&blurred[i, 0], cw, LAP_R)
        # Extended row i - S8_R; rows outside the image are reflected (101).
        for i in prange(ch + 2 * S8_R, num_threads=nthreads, schedule="dynamic",
                        chunksize=ROWS_PER_TASK):
            _diag_binomial_row(&blurred[_reflect101(i - S8_R - 1, ch), 0],
                               &blurred[_reflect101(i - S8_R, ch), 0],
                               &blurred[_reflect101(i - S8_R + 1, ch), 0], cw, &half[i, 0])
        for i in prange(ch, num_threads=nthreads, schedule="dynamic",
                        chunksize=ROWS_PER_TASK):
            _binomial_col_stats(&half[i, 0], cw, cw, &sums[i], &sqs[i])
        # Rows are combined in a fixed order so the score does not depend on the
        # thread count.
        for i in range(ch):
            total += sums[i]
            sq += sqs[i]
    # The sums are of L / 2: var(L) = 4 var(L / 2).
    mean = <double>total / (<double>ch * cw)
    return 4.0 * max(sq / (<double>ch * cw) - mean * mean, 0.0)


# ---------------------------------------------------------------------------
# Frame similarity

cdef void _sqdiff_row(const uint8_t* ra, int ca, const int32_t* xa,
                      const uint8_t* rb, int cb, const int32_t* xb, Py_ssize_t n,
                      int64_t* out) noexcept nogil:
    # Sums of one output row, a chunk at a time: gather the two gray rows into local
    # buffers (scalar), then sum in 32 bits (vectorised; a chunk's sums stay below
    # CHUNK * 255**2 < 2**31) and carry the totals in 64 bits.
    cdef uint8_t ga[CHUNK]
    cdef uint8_t gb[CHUNK]
    cdef int32_t saa, sbb, sdd, d
    cdef int64_t taa = 0, tbb = 0, tdd = 0
    cdef Py_ssize_t j, j0 = 0, m
    cdef const uint8_t* pa
    cdef const uint8_t* pb
    while j0 < n:
        m = min(<Py_ssize_t>CHUNK, n - j0)
        # A NULL offset table: the row is gray at the output size already (a frame
        # resized once and compared again), read in place.
        if xa == NULL:
            pa = ra + j0
        else:
            _sample_gray_row(ra, ca, xa + j0, m, ga)
            pa = ga
        if xb == NULL:
            pb = rb + j0
        else:
            _sample_gray_row(rb, cb, xb + j0, m, gb)
            pb = gb
        saa = 0
        sbb = 0
        sdd = 0
        for j in range(m):
            saa += pa[j] * pa[j]
            sbb += pb[j] * pb[j]
            d = pa[j] - pb[j]
            sdd += d * d
        taa += saa
        tbb += sbb
        tdd += sdd
        j0 += m
    out[0] = taa
    out[1] = tbb
    out[2] = tdd


def frame_sums(const uint8_t[:, :, ::1] a, const uint8_t[:, :, ::1] b, int out_w, int out_h,
               int nthreads):
    """Exact ``(sum(A**2), sum(B**2), sum((A - B)**2))`` of the resized gray frames."""
    cdef int ha = a.shape[0], wa = a.shape[1], ca = a.shape[2]
    cdef int hb = b.shape[0], wb = b.shape[1], cb = b.shape[2]
    cdef int i
    xa_a = np.empty(out_w, np.int32)
    xb_a = np.empty(out_w, np.int32)
    ya_a = np.empty(out_h, np.int32)
    yb_a = np.empty(out_h, np.int32)
    sums_a = np.empty((out_h, 3), np.int64)
    cdef int32_t[::1] xa = xa_a
    cdef int32_t[::1] xb = xb_a
    cdef int32_t[::1] ya = ya_a
    cdef int32_t[::1] yb = yb_a
    cdef int64_t[:, ::1] sums = sums_a
    cdef const uint8_t* pa = &a[0, 0, 0]
    cdef const uint8_t* pb = &b[0, 0, 0]
    cdef Py_ssize_t sa = <Py_ssize_t>wa * ca, sb = <Py_ssize_t>wb * cb
    cdef bint in_place_a = ca == 1 and wa == out_w and ha == out_h
    cdef bint in_place_b = cb == 1 and wb == out_w and hb == out_h
    with nogil:
        _nearest_offsets(wa, out_w, ca, &xa[0])
        _nearest_offsets(ha, out_h, 1, &ya[0])
        _nearest_offsets(wb, out_w, cb, &xb[0])
        _nearest_offsets(hb, out_h, 1, &yb[0])
        for i in prange(out_h, num_threads=nthreads, schedule="dynamic",
                       chunksize=ROWS_PER_TASK):
            _sqdiff_row(pa + ya[i] * sa, ca, NULL if in_place_a else &xa[0],
                        pb + yb[i] * sb, cb, NULL if in_place_b else &xb[0],
                        out_w, &sums[i, 0])
    total = sums_a.sum(axis=0)
    return int(total[0]), int(total[1]), int(total[2])


# ---------------------------------------------------------------------------
# Emptiness (Canny edge count)

# Edge map codes, as in OpenCV's Canny: 0 = weak candidate (local maximum above the
# low threshold), 1 = not an edge, 3 = edge (strong, or reached from a strong one).
cdef enum:
    WEAK = 0
    NONE = 1
    EDGE = 3
# tan(22.5 deg) in 15-bit fixed point: OpenCV's sector test for the gradient angle.
cdef enum:
    TG22 = 13573
# Rows per stripe at least; stripes are processed in parallel.
cdef enum:
    MIN_STRIPE_ROWS = 32


cdef void _sobel_row(const uint8_t* up, const uint8_t* mid, const uint8_t* dn, Py_ssize_t w,
                     int16_t* vs, int16_t* vd, int16_t* dx, int16_t* dy,
                     int16_t* mag) noexcept nogil:
    # 3x3 Sobel of the gray row ``mid`` (rows above and below: BORDER_REPLICATE, as
    # cv::Canny uses) and the L1 magnitude. ``vs``, ``vd`` and ``mag`` hold pixel j
    # at index j + 1 with one extra pixel on each side: replicated for the Sobel, 0
    # for the magnitude (NMS compares with 0 outside the image, as OpenCV does).
    cdef Py_ssize_t j
    cdef int16_t gx, gy
    for j in range(w):
        vs[j + 1] = up[j] + 2 * mid[j] + dn[j]
        vd[j + 1] = dn[j] - up[j]
    vs[0] = vs[1]
    vd[0] = vd[1]
    vs[w + 1] = vs[w]
    vd[w + 1] = vd[w]
    for j in range(w):
        gx = vs[j + 2] - vs[j]
        gy = vd[j] + 2 * vd[j + 1] + vd[j + 2]
        dx[j] = gx
        dy[j] = gy
        mag[j + 1] = (gx if gx >= 0 else -gx) + (gy if gy >= 0 else -gy)
    mag[0] = 0
    mag[w + 1] = 0


cdef inline void _nms_chunk(const int16_t* mp, const int16_t* ma, const int16_t* mn,
                            const int16_t* dx, const int16_t* dy, Py_ssize_t w,
                            int16_t low, int16_t high, uint8_t* out) noexcept nogil:
    # Non-maximum suppression across the gradient direction, sector by sector as in
    # cv::Canny: near-horizontal gradients compare left/right, near-vertical up/down,
    # diagonals the two diagonal neighbours; on the axes ties go to the second
    # neighbour. Natural images make the sector unpredictable, so every neighbour is
    # loaded and the choice is arithmetic: no branches, and the loop vectorises in
    # 16-bit lanes. Magnitude rows hold pixel j at index j + 1. Needs low >= 0.
    cdef Py_ssize_t j
    cdef int16_t m, xs, ys, sx, sy, ax, ay, t, n1, n2, neg, horiz, vert, axis
    cdef int16_t left, right, up, up_l, up_r, down, down_l, down_r
    cdef uint8_t keep, strong
    for j in range(w):
        m = ma[j + 1]
        left = ma[j]
        right = ma[j + 2]
        up_l = mp[j]
        up = mp[j + 1]
        up_r = mp[j + 2]
        down_l = mn[j]
        down = mn[j + 1]
        down_r = mn[j + 2]
        xs = dx[j]
        ys = dy[j]
        # Selections are bit masks (0 or -1), the form SSE2 vectorises.
        sx = xs >> 15
        sy = ys >> 15
        ax = (xs ^ sx) - sx
        ay = (ys ^ sy) - sy
        # OpenCV tests (|dy| << 15) < |dx| * TG22 and > |dx| * TG22 + (|dx| << 16).
        # With t = floor(|dx| * TG22 / 2**15) that is |dy| <= t and |dy| > 2|dx| + t
        # (|dx| * TG22 is never a multiple of 2**15 for 0 < |dx| < 2**15; |dx| = 0
        # differs only at dx = dy = 0, where m = 0 is never kept). 16 bits suffice.
        t = <int16_t>((<int32_t>ax * (2 * TG22)) >> 16)
        horiz = -<int16_t>(ay <= t)
        vert = -<int16_t>(ay > <int16_t>(2 * ax + t))
        # Diagonal gradients with opposite signs look up-right/down-left.
        neg = (xs ^ ys) >> 15
        n1 = up_l ^ ((up_l ^ up_r) & neg)
        n2 = down_r ^ ((down_r ^ down_l) & neg)
        n1 = n1 ^ ((n1 ^ up) & vert)
        n2 = n2 ^ ((n2 ^ down) & vert)
        n1 = n1 ^ ((n1 ^ left) & horiz)
        n2 = n2 ^ ((n2 ^ right) & horiz)
        # "m >= n2" on the axes is "m + 1 > n2" in integers.
        axis = (horiz | vert) & 1
        keep = (m > low) & (m > n1) & (<int16_t>(m + axis) > n2)
        strong = keep & (m > high)
        out[j] = NONE - keep + strong * EDGE


cdef void _nms_row(const int16_t* mp, const int16_t* ma, const int16_t* mn,
                   const int16_t* dx, const int16_t* dy, Py_ssize_t w, int16_t low,
                   int16_t high, uint8_t* out) noexcept nogil:
    # Codes go to a local chunk first: it aliases none of the inputs, so the NMS
    # loop vectorises without run-time overlap checks.
    cdef uint8_t codes[CHUNK]
    cdef Py_ssize_t j0 = 0, n
    while j0 < w:
        n = min(<Py_ssize_t>CHUNK, w - j0)
        _nms_chunk(mp + j0, ma + j0, mn + j0, dx + j0, dy + j0, n, low, high, codes)
        memcpy(out + j0, codes, n)
        j0 += n


cdef Py_ssize_t _push_edges(const uint8_t* row, Py_ssize_t w, Py_ssize_t base,
                            Py_ssize_t* stack) noexcept nogil:
    # Push the edge pixels of one map row (as map indices). Eight codes are tested
    # at once first: only EDGE (3) has bit 1 set, and many 8-pixel runs hold none.
    # Within a run the push is branch-free (the slot is overwritten if no edge).
    cdef Py_ssize_t top = 0, j = 0, k
    cdef uint64_t word
    while j + 8 <= w:
        memcpy(&word, row + j, 8)
        if word & 0x0202020202020202ULL:
            for k in range(j, j + 8):
                stack[top] = base + k
                top += row[k] == EDGE
        j += 8
    while j < w:
        stack[top] = base + j
        top += row[j] == EDGE
        j += 1
    return top


cdef Py_ssize_t _fill(uint8_t* emap, Py_ssize_t stride, Py_ssize_t lo, Py_ssize_t hi,
                      Py_ssize_t* stack, Py_ssize_t top) noexcept nogil:
    # Hysteresis: every weak pixel 8-connected to an edge becomes an edge. Only map
    # indices in [lo, hi) are visited, so parallel stripes never touch each other's
    # rows. Returns the number of pixels turned into edges.
    cdef Py_ssize_t p, q, added = 0
    cdef Py_ssize_t offs[8]
    cdef Py_ssize_t inner_lo = lo + stride, inner_hi = hi - stride
    cdef int k
    offs[0] = -stride - 1
    offs[1] = -stride
    offs[2] = -stride + 1
    offs[3] = -1
    offs[4] = 1
    offs[5] = stride - 1
    offs[6] = stride
    offs[7] = stride + 1
    while top > 0:
        top -= 1
        p = stack[top]
        if p >= inner_lo and p < inner_hi:
            # All neighbours lie inside [lo, hi): no bounds tests.
            for k in range(8):
                q = p + offs[k]
                if emap[q] == WEAK:
                    emap[q] = EDGE
                    stack[top] = q
                    top += 1
                    added += 1
        else:
            for k in range(8):
                q = p + offs[k]
                if q >= lo and q < hi and emap[q] == WEAK:
                    emap[q] = EDGE
                    stack[top] = q
                    top += 1
                    added += 1
    return added


ctypedef void (*gray_row_fn)(const uint8_t*, Py_ssize_t, uint8_t*) noexcept nogil
cdef gray_row_fn _gray_row = sf_gray_row_avx2 if sf_has_avx2() else sf_gray_row_base


def gray(const uint8_t[:, :, ::1] image, uint8_t[:, ::1] out, int nthreads):
    """``cv2.cvtColor(image, COLOR_RGB2GRAY)`` of an RGB image into ``out`` (H, W)."""
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], i
    with nogil:
        for i in prange(h, num_threads=nthreads, schedule="dynamic", chunksize=ROWS_PER_TASK):
            _gray_row(&image[i, 0, 0], w, &out[i, 0])


def resize_nearest(const uint8_t[:, :, ::1] image, uint8_t[:, :, ::1] out, int nthreads):
    """``cv2.resize(image, INTER_NEAREST)`` to ``out``'s (height, width)."""
    cdef int h = image.shape[0], w = image.shape[1], c = image.shape[2]
    cdef int out_h = out.shape[0], out_w = out.shape[1], i, j, k
    xofs_a = np.empty(out_w, np.int32)
    yofs_a = np.empty(out_h, np.int32)
    cdef int32_t[::1] xofs = xofs_a
    cdef int32_t[::1] yofs = yofs_a
    cdef const uint8_t* row
    cdef uint8_t* dst
    with nogil:
        _nearest_offsets(w, out_w, c, &xofs[0])
        _nearest_offsets(h, out_h, 1, &yofs[0])
        for i in prange(out_h, num_threads=nthreads, schedule="dynamic", chunksize=ROWS_PER_TASK):
            row = &image[yofs[i], 0, 0]
            dst = &out[i, 0, 0]
            if c == 1:
                for j in range(out_w):
                    dst[j] = row[xofs[j]]
            else:
                for j in range(out_w):
                    for k in range(c):
                        dst[j * c + k] = row[xofs[j] + k]


cdef const uint8_t* _gray_source_row(const uint8_t* src, int channels, int h, int w, int r,
                                     uint8_t* ring, int* held) noexcept nogil:
    # Gray row r (clamped to the image: BORDER_REPLICATE). RGB rows are converted
    # once into a ring of three rows, slot r % 3: a stripe walks down its rows and
    # only ever needs three consecutive ones, so no full gray frame is written.
    cdef int slot
    r = 0 if r < 0 else (h - 1 if r >= h else r)
    if channels == 1:
        return src + <Py_ssize_t>r * w
    slot = r % 3
    if held[slot] != r:
        _gray_row(src + <Py_ssize_t>r * w * 3, w, ring + slot * w)
        held[slot] = r
    return ring + slot * w


cdef void _gradient_row(const uint8_t* src, int channels, int h, int w, int r,
                        uint8_t* ring, int* held, int16_t* vs, int16_t* vd,
                        int16_t* dx, int16_t* dy, int16_t* mag) noexcept nogil:
    # Sobel and magnitude of row r; all zero magnitude outside the image, where
    # OpenCV pads its ring buffer with zeros.
    cdef const uint8_t* up
    cdef const uint8_t* mid
    cdef const uint8_t* dn
    cdef Py_ssize_t j
    if r < 0 or r >= h:
        for j in range(w + 2):
            mag[j] = 0
        return
    up = _gray_source_row(src, channels, h, w, r - 1, ring, held)
    mid = _gray_source_row(src, channels, h, w, r, ring, held)
    dn = _gray_source_row(src, channels, h, w, r + 1, ring, held)
    _sobel_row(up, mid, dn, w, vs, vd, dx, dy, mag)


cdef Py_ssize_t _canny_stripe(const uint8_t* src, int channels, int h, int w, int r0,
                              int r1, int16_t low, int16_t high, uint8_t* emap,
                              int16_t* scratch, uint8_t* ring,
                              Py_ssize_t* stack) noexcept nogil:
    # Gray, gradient, NMS and the hysteresis fill restricted to rows [r0, r1), with
    # rings of three gray and three gradient rows so the working set stays in
    # cache. Returns the edge count.
    cdef Py_ssize_t stride = w + 2
    cdef int16_t* vs = scratch
    cdef int16_t* vd = scratch + stride
    cdef int16_t* mag[3]
    cdef int16_t* dxs[3]
    cdef int16_t* dys[3]
    cdef int16_t* tmp
    cdef int held[3]
    cdef int k, i
    cdef Py_ssize_t top = 0, edges
    for k in range(3):
        mag[k] = scratch + (2 + 3 * k) * stride
        dxs[k] = scratch + (3 + 3 * k) * stride
        dys[k] = scratch + (4 + 3 * k) * stride
        held[k] = -1
    _gradient_row(src, channels, h, w, r0 - 1, ring, held, vs, vd, dxs[0], dys[0], mag[0])
    _gradient_row(src, channels, h, w, r0, ring, held, vs, vd, dxs[1], dys[1], mag[1])
    for i in range(r0, r1):
        _gradient_row(src, channels, h, w, i + 1, ring, held, vs, vd, dxs[2], dys[2], mag[2])
        emap[(i + 1) * stride] = NONE
        emap[(i + 1) * stride + w + 1] = NONE
        _nms_row(mag[0], mag[1], mag[2], dxs[1], dys[1], w, low, high,
                 emap + (i + 1) * stride + 1)
        top += _push_edges(emap + (i + 1) * stride + 1, w, (i + 1) * stride + 1,
                           stack + top)
        tmp = mag[0]; mag[0] = mag[1]; mag[1] = mag[2]; mag[2] = tmp
        tmp = dxs[0]; dxs[0] = dxs[1]; dxs[1] = dxs[2]; dxs[2] = tmp
        tmp = dys[0]; dys[0] = dys[1]; dys[1] = dys[2]; dys[2] = tmp
    edges = top
    edges += _fill(emap, stride, (r0 + 1) * stride, (r1 + 1) * stride, stack, top)
    return edges


cdef Py_ssize_t _canny(const uint8_t* src, int channels, int h, int w, int16_t low,
                       int16_t high, uint8_t* emap, int16_t* scratch,
                       Py_ssize_t scratch_len, uint8_t* rings, Py_ssize_t* stack,
                       int nstripes, int nthreads) noexcept nogil:
    # Stripes run in parallel; an edge can still cross from one stripe into the next,
    # so afterwards the edge pixels on both sides of every stripe boundary seed one
    # serial fill over the whole map (usually a handful of pixels).
    cdef Py_ssize_t stride = w + 2, edges = 0, top = 0
    cdef int k, r, j, r0, r1
    for k in prange(nstripes, num_threads=nthreads, schedule="dynamic"):
        r0 = <int>((<int64_t>k * h) // nstripes)
        r1 = <int>((<int64_t>(k + 1) * h) // nstripes)
        edges += _canny_stripe(src, channels, h, w, r0, r1, low, high, emap,
                               scratch + k * scratch_len, rings + k * 3 * <Py_ssize_t>w,
                               stack + <Py_ssize_t>r0 * w)
    for k in range(1, nstripes):
        r0 = <int>((<int64_t>k * h) // nstripes)
        for r in range(r0 - 1, r0 + 1):
            for j in range(w):
                if emap[(r + 1) * stride + j + 1] == EDGE:
                    stack[top] = (r + 1) * stride + j + 1
                    top += 1
    edges += _fill(emap, stride, 0, (h + 2) * stride, stack, top)
    return edges


cdef tuple _edge_map(const uint8_t[:, :, ::1] image, int low, int high, int nthreads):
    # Returns (edge count, padded edge-code map).
    if low > high:
        low, high = high, low  # as cv::Canny
    if low < 0:
        raise ValueError(f"Canny thresholds must be >= 0, got {low}")
    # L1 magnitudes are at most 2040: larger thresholds act the same, and clamping
    # keeps them in the 16-bit lanes of the NMS loop.
    low = min(low, 4096)
    high = min(high, 4096)
    cdef int h = image.shape[0], w = image.shape[1], channels = image.shape[2]
    # One stripe on one thread (no seams to repair); otherwise several per thread
    # so a slowed-down thread does not hold the others up.
    cdef int nstripes = 1 if nthreads == 1 else max(1, min(h // MIN_STRIPE_ROWS, 8 * nthreads))
    cdef Py_ssize_t scratch_len = 11 * (<Py_ssize_t>w + 2)
    emap_a = np.empty((h + 2, w + 2), np.uint8)
    emap_a[0] = NONE
    emap_a[h + 1] = NONE
    scratch_a = np.empty(nstripes * scratch_len, np.int16)
    rings_a = np.empty(nstripes * 3 * <Py_ssize_t>w, np.uint8)
    # One slot per pixel: every pixel is pushed at most once per fill.
    stack_a = np.empty(<Py_ssize_t>h * w, np.intp)
    cdef uint8_t[:, ::1] emap = emap_a
    cdef int16_t[::1] scratch = scratch_a
    cdef Py_ssize_t[::1] stack = stack_a
    cdef uint8_t[::1] rings = rings_a
    cdef Py_ssize_t edges
    with nogil:
        edges = _canny(&image[0, 0, 0], channels, h, w, <int16_t>low, <int16_t>high,
                       &emap[0, 0], &scratch[0], scratch_len, &rings[0], &stack[0],
                       nstripes, nthreads)
    return edges, emap_a


def edge_count(const uint8_t[:, :, ::1] image, int low, int high, int nthreads=1):
    """Number of pixels in ``cv2.Canny(gray(image), low, high)`` (L1, aperture 3)."""
    return _edge_map(image, low, high, max(nthreads, 1))[0]


def canny(const uint8_t[:, :, ::1] image, int low, int high, int nthreads=1):
    """The edge map of ``cv2.Canny(gray(image), low, high)``: uint8 (H, W), 0 or 255."""
    emap = _edge_map(image, low, high, max(nthreads, 1))[1]
    return np.where(emap[1:-1, 1:-1] == EDGE, 255, 0).astype(np.uint8)
