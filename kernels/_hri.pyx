# cython: language_level=3
"""C core of the Hierarchical Retrieval Index (HRI, docs/stages.md, "The online index").

Only ``streamface.identify.hri`` calls into this module; it has already checked every
argument (dimension, finiteness, non-zero norms for cosine, capacity), so these
functions trust shapes and ranges. The tree is held in flat C arrays: node
values ``(capacity, dim)`` float64, value norms, descendant counts, parents,
labels (-1 for internal nodes) and one child-index list per node grown by
doubling. There is no Python object per node; inserts and searches run without
the GIL, and batched search spreads queries over OpenMP threads.

Node 0 is the root (internal, never an end node). The insert rules and their
choices are documented in ``streamface.identify.hri``; this file implements exactly those.
"""

from cython.parallel cimport prange
from libc.math cimport INFINITY, sqrt
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc, realloc
from posix.stdlib cimport posix_memalign
from libc.string cimport memcpy, memmove
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

import numpy as np

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int sf_hri_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int sf_hri_max_threads(void) { return 1; }
    #endif
    """
    int sf_hri_max_threads() noexcept nogil

cdef enum:
    COSINE = 0
    EUCLIDEAN = 1
    FIRST_CHILD_CAPACITY = 4
    # Insert rules (``streamface.identify.hri.MODES``).
    MODE_BALANCED = 0
    MODE_GREEDY = 1
    MODE_ORIGINAL = 2


def default_threads():
    """OpenMP's default team size (``OMP_NUM_THREADS`` or the core count); 1 without OpenMP."""
    return max(sf_hri_max_threads(), 1)


cdef extern from *:
    """
    /* Vector loops, compiled twice on x86-64 GCC (AVX2 and baseline) and picked at load
       time: the distance scans are most of the search time. The sums are split across
       lanes (the order differs from NumPy's by ulps, which only matters at exact ties,
       and ties are built from exactly representable values).
       No clone enables FMA, so the mean update below rounds exactly like NumPy's
       ``(value * count + x) / (count + 1)``. */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #define SF_HRI_CLONES __attribute__((target_clones("avx2", "default")))
    #else
    #define SF_HRI_CLONES
    #endif
    /* Four independent 4-lane accumulators: one running sum is latency-bound. */
    typedef double sf_hri_v4 __attribute__((vector_size(32), aligned(8)));
    SF_HRI_CLONES
    static double sf_hri_dot(const double *a, const double *b, long n) {
        sf_hri_v4 s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s3 = s0;
        long j = 0;
        for (; j + 16 <= n; j += 16) {
            s0 += *(const sf_hri_v4 *)(a + j) * *(const sf_hri_v4 *)(b + j);
            s1 += *(const sf_hri_v4 *)(a + j + 4) * *(const sf_hri_v4 *)(b + j + 4);
            s2 += *(const sf_hri_v4 *)(a + j + 8) * *(const sf_hri_v4 *)(b + j + 8);
            s3 += *(const sf_hri_v4 *)(a + j + 12) * *(const sf_hri_v4 *)(b + j + 12);
        }
        s0 = (s0 + s1) + (s2 + s3);
        double acc = (s0[0] + s0[1]) + (s0[2] + s0[3]);
        for (; j < n; j++) acc += a[j] * b[j];
        return acc;
    }
    SF_HRI_CLONES
    static double sf_hri_sqdist(const double *a, const double *b, long n) {
        sf_hri_v4 s0 = {0, 0, 0, 0}, s1 = s0, s2 = s0, s3 = s0, t0, t1, t2, t3;
        long j = 0;
        for (; j + 16 <= n; j += 16) {
            t0 = *(const sf_hri_v4 *)(a + j) - *(const sf_hri_v4 *)(b + j);
            t1 = *(const sf_hri_v4 *)(a + j + 4) - *(const sf_hri_v4 *)(b + j + 4);
            t2 = *(const sf_hri_v4 *)(a + j + 8) - *(const sf_hri_v4 *)(b + j + 8);
            t3 = *(const sf_hri_v4 *)(a + j + 12) - *(const sf_hri_v4 *)(b + j + 12);
            s0 += t0 * t0;
            s1 += t1 * t1;
            s2 += t2 * t2;
            s3 += t3 * t3;
        }
        s0 = (s0 + s1) + (s2 + s3);
        double acc = (s0[0] + s0[1]) + (s0[2] + s0[3]);
        for (; j < n; j++) { double t = a[j] - b[j]; acc += t * t; }
        return acc;
    }
    /* Ask for a node value's cache lines ahead of its distance, so the loads of a
       node's children overlap instead of each waiting on L2/L3. */
    static inline void sf_hri_prefetch(const double *v, long n) {
        for (long j = 0; j < n; j += 8) __builtin_prefetch(v + j);
    }
    SF_HRI_CLONES
    static void sf_hri_mean_update(double *restrict v, const double *restrict x, double c, long n) {
        for (long j = 0; j < n; j++) v[j] = (v[j] * c + x[j]) / (c + 1.0);
    }
    """
    double sf_hri_dot(const double* a, const double* b, long n) noexcept nogil
    double sf_hri_sqdist(const double* a, const double* b, long n) noexcept nogil
    void sf_hri_mean_update(double* v, const double* x, double c, long n) noexcept nogil
    void sf_hri_prefetch(const double* v, long n) noexcept nogil


cdef inline double vector_norm(const double* v, int64_t dim) noexcept nogil:
    return sqrt(sf_hri_dot(v, v, dim))


cdef inline double distance(const double* q, double qnorm, const double* v, double vnorm,
                            int64_t dim, int metric) noexcept nogil:
    """Cosine distance ``1 - q.v / (|q||v|)`` (1 when a norm is 0) or Euclidean distance."""
    if metric == COSINE:
        if qnorm == 0.0 or vnorm == 0.0:
            return 1.0
        return 1.0 - sf_hri_dot(q, v, dim) / (qnorm * vnorm)
    return sqrt(sf_hri_sqdist(q, v, dim))


cdef inline double now_seconds() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <double>ts.tv_sec + 1e-9 * <double>ts.tv_nsec


cdef inline int64_t offer(int64_t* nodes, double* dists, int64_t n, int64_t k,
                          int64_t node, double d) noexcept nogil:
    """Insert (node, d) into the sorted top-``k`` list of length ``n``; returns the new length."""
    cdef int64_t pos, m
    if n == k and not (d < dists[n - 1]):
        return n
    pos = n if n < k else k - 1
    while pos > 0 and d < dists[pos - 1]:
        pos -= 1
    m = n if n < k else k - 1
    while m > pos:
        nodes[m] = nodes[m - 1]
        dists[m] = dists[m - 1]
        m -= 1
    nodes[pos] = node
    dists[pos] = d
    return n + 1 if n < k else k


cdef class HRICore:
    """The tree in flat C arrays. Not thread-safe: ``streamface.identify.hri`` serialises access."""

    cdef readonly int64_t dim
    cdef readonly int metric
    cdef readonly double threshold
    cdef readonly int64_t n_nodes
    cdef readonly int64_t n_labels
    cdef readonly int64_t capacity
    cdef double* values
    cdef double* norms
    cdef double* sums
    cdef int64_t* counts
    cdef int64_t* parents
    cdef int64_t* labels
    cdef int64_t* label_node
    cdef int64_t** children
    cdef int64_t* n_children
    cdef int64_t* child_capacity
    cdef readonly int mode
    cdef readonly int64_t insert_beam
    cdef readonly int64_t max_children
    cdef int64_t* scratch_nodes
    cdef double* scratch_d
    cdef int64_t* split_kids
    cdef int64_t* split_order
    cdef double* split_margin
    cdef double* split_centres

    def __cinit__(self, int64_t dim, int metric, double threshold, int mode=MODE_GREEDY,
                  int64_t insert_beam=1, int64_t max_children=0):
        self.dim = dim
        self.metric = metric
        self.threshold = threshold
        self.mode = mode
        self.insert_beam = max(insert_beam, 1)
        self.max_children = max(max_children, 3)
        # Scratch reused by every insert (inserts are serialised by the caller): the beam,
        # and a split's child list, margins, order and two centres.
        self.scratch_nodes = <int64_t*>malloc(3 * self.insert_beam * sizeof(int64_t))
        self.scratch_d = <double*>malloc(3 * self.insert_beam * sizeof(double))
        self.split_kids = <int64_t*>malloc((self.max_children + 1) * sizeof(int64_t))
        self.split_order = <int64_t*>malloc((self.max_children + 1) * sizeof(int64_t))
        self.split_margin = <double*>malloc((self.max_children + 1) * sizeof(double))
        self.split_centres = <double*>malloc(2 * dim * sizeof(double))
        if self.scratch_nodes == NULL or self.scratch_d == NULL or self.split_kids == NULL \
                or self.split_order == NULL or self.split_margin == NULL \
                or self.split_centres == NULL:
            raise MemoryError("HRI: cannot allocate the insert scratch")
        self.n_nodes = 0
        self.n_labels = 0
        self.capacity = 0
        self.values = NULL
        self.sums = NULL
        self.norms = NULL
        self.counts = NULL
        self.parents = NULL
        self.labels = NULL
        self.label_node = NULL
        self.children = NULL
        self.n_children = NULL
        self.child_capacity = NULL
        self.reserve(16)
        self.new_node(NULL, 0, -1, -1)  # the root

    def __dealloc__(self):
        cdef int64_t i
        if self.children != NULL:
            for i in range(self.n_nodes):
                free(self.children[i])
        free(self.values)
        free(self.norms)
        free(self.sums)
        free(self.counts)
        free(self.parents)
        free(self.labels)
        free(self.label_node)
        free(self.children)
        free(self.n_children)
        free(self.child_capacity)
        free(self.scratch_nodes)
        free(self.scratch_d)
        free(self.split_kids)
        free(self.split_order)
        free(self.split_margin)
        free(self.split_centres)

    # ------------------------------------------------------------------
    # Storage

    def reserve(self, int64_t wanted):
        """Grow the node arrays (by doubling) to hold at least ``wanted`` nodes."""
        cdef int64_t cap = max(self.capacity, 16)
        cdef void* p
        if wanted <= self.capacity:
            return
        while cap < wanted:
            cap *= 2
        # Cache-line aligned, so a row of 8k doubles spans exactly k lines (realloc's
        # large blocks sit 16 bytes past a page, putting every row across one more line).
        if posix_memalign(&p, 64, cap * self.dim * sizeof(double)) != 0:
            raise MemoryError("HRI: cannot grow node values")
        if self.values != NULL:
            memcpy(p, self.values, self.n_nodes * self.dim * sizeof(double))
            free(self.values)
        self.values = <double*>p
        p = realloc(self.norms, cap * sizeof(double))
        if p == NULL:
            raise MemoryError("HRI: cannot grow node norms")
        self.norms = <double*>p
        p = realloc(self.counts, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError("HRI: cannot grow node counts")
        self.counts = <int64_t*>p
        p = realloc(self.parents, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError("HRI: cannot grow node parents")
        self.parents = <int64_t*>p
        p = realloc(self.labels, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError("HRI: cannot grow node labels")
        self.labels = <int64_t*>p
        p = realloc(self.label_node, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError("HRI: cannot grow the label table")
        self.label_node = <int64_t*>p
        p = realloc(self.children, cap * sizeof(int64_t*))
        if p == NULL:
            raise MemoryError("HRI: cannot grow child lists")
        self.children = <int64_t**>p
        p = realloc(self.n_children, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError("HRI: cannot grow child counts")
        self.n_children = <int64_t*>p
        p = realloc(self.child_capacity, cap * sizeof(int64_t))
        if p == NULL:
            raise MemoryError("HRI: cannot grow child capacities")
        self.child_capacity = <int64_t*>p
        if self.mode == MODE_ORIGINAL:
            # The original's end-node values are the sums of their vectors over the count.
            p = realloc(self.sums, cap * self.dim * sizeof(double))
            if p == NULL:
                raise MemoryError("HRI: cannot grow end-node sums")
            self.sums = <double*>p
        self.capacity = cap

    cdef int64_t new_node(self, const double* value, int64_t count, int64_t parent,
                          int64_t label) noexcept nogil:
        """Append a node (capacity already reserved); returns its id, -1 when out of memory."""
        cdef int64_t node = self.n_nodes
        if node >= self.capacity:
            return -1
        cdef int64_t* kids = <int64_t*>malloc(FIRST_CHILD_CAPACITY * sizeof(int64_t))
        if kids == NULL:
            return -1
        cdef double* v = self.values + node * self.dim
        cdef int64_t j
        if value == NULL:
            for j in range(self.dim):
                v[j] = 0.0
        else:
            memcpy(v, value, self.dim * sizeof(double))
        self.norms[node] = vector_norm(v, self.dim)
        self.counts[node] = count
        self.parents[node] = parent
        self.labels[node] = label
        self.children[node] = kids
        self.n_children[node] = 0
        self.child_capacity[node] = FIRST_CHILD_CAPACITY
        if label >= 0:
            self.label_node[label] = node
        self.n_nodes += 1
        return node

    cdef int grow_children(self, int64_t node) noexcept nogil:
        """Make room for one more child of ``node`` (doubling); 0 on success, -1 out of memory."""
        cdef int64_t cap
        cdef void* p
        if self.n_children[node] < self.child_capacity[node]:
            return 0
        cap = 2 * self.child_capacity[node]
        p = realloc(self.children[node], cap * sizeof(int64_t))
        if p == NULL:
            return -1
        self.children[node] = <int64_t*>p
        self.child_capacity[node] = cap
        return 0

    cdef inline void add_child(self, int64_t parent, int64_t child) noexcept nogil:
        self.children[parent][self.n_children[parent]] = child
        self.n_children[parent] += 1
        self.parents[child] = parent

    cdef void absorb(self, int64_t node, const double* x) noexcept nogil:
        """Weighted-mean update of ``node`` and every ancestor with one more vector ``x``.

        Norms are kept for cosine only (Euclidean distances never read them).
        """
        cdef double* v
        while node >= 0:
            v = self.values + node * self.dim
            sf_hri_mean_update(v, x, <double>self.counts[node], self.dim)
            self.counts[node] += 1
            if self.metric == COSINE:
                self.norms[node] = vector_norm(v, self.dim)
            node = self.parents[node]

    # ------------------------------------------------------------------
    # Search

    cdef int64_t descend(self, const double* q, double qnorm, double* out_distance) noexcept nogil:
        """Greedy descent from the root to an end node; ties go to the earlier child."""
        cdef int64_t node = 0, best, child, i
        cdef double best_d = INFINITY, d
        while self.labels[node] < 0:
            best = self.children[node][0]
            best_d = INFINITY
            for i in range(min(self.n_children[node], 8)):
                sf_hri_prefetch(self.values + self.children[node][i] * self.dim, self.dim)
            for i in range(self.n_children[node]):
                child = self.children[node][i]
                d = distance(q, qnorm, self.values + child * self.dim, self.norms[child],
                             self.dim, self.metric)
                if d < best_d:
                    best_d = d
                    best = child
            node = best
        out_distance[0] = best_d
        return node

    cdef int beam(self, const double* q, double qnorm, int64_t k,
                  int64_t* out_nodes, double* out_d) noexcept nogil:
        """The ``k`` nearest end nodes by beam descent (width ``k``; ``k = 1`` is ``descend``).

        At each level the beam's internal nodes are replaced by their children and the
        ``k`` closest candidates are kept, end nodes staying in the race, until the beam
        holds only end nodes. Candidates are offered in beam order, children in order,
        and an equal distance never displaces an earlier candidate.
        """
        cdef int64_t* beam_nodes = <int64_t*>malloc(2 * k * sizeof(int64_t))
        cdef double* beam_d = <double*>malloc(2 * k * sizeof(double))
        if beam_nodes == NULL or beam_d == NULL:
            free(beam_nodes)
            free(beam_d)
            return -1
        self.beam_in(q, qnorm, k, beam_nodes, beam_d, out_nodes, out_d)
        free(beam_nodes)
        free(beam_d)
        return 0

    cdef void beam_in(self, const double* q, double qnorm, int64_t k, int64_t* beam_nodes,
                      double* beam_d, int64_t* out_nodes, double* out_d) noexcept nogil:
        """``beam`` with caller-owned scratch of ``2 k`` nodes and distances."""
        cdef int64_t* next_nodes = beam_nodes + k
        cdef double* next_d = beam_d + k
        cdef int64_t n_beam = 1, n_next, b, i, node, child
        cdef double d
        cdef bint expanded = True
        beam_nodes[0] = 0
        beam_d[0] = 0.0
        while expanded:
            expanded = False
            n_next = 0
            for b in range(n_beam):
                node = beam_nodes[b]
                if self.labels[node] >= 0:
                    n_next = offer(next_nodes, next_d, n_next, k, node, beam_d[b])
                    continue
                expanded = True
                for i in range(self.n_children[node]):
                    child = self.children[node][i]
                    d = distance(q, qnorm, self.values + child * self.dim, self.norms[child],
                                 self.dim, self.metric)
                    n_next = offer(next_nodes, next_d, n_next, k, child, d)
            memcpy(beam_nodes, next_nodes, n_next * sizeof(int64_t))
            memcpy(beam_d, next_d, n_next * sizeof(double))
            n_beam = n_next
        for b in range(k):
            if b < n_beam:
                out_nodes[b] = beam_nodes[b]
                out_d[b] = beam_d[b]
            else:
                out_nodes[b] = -1
                out_d[b] = INFINITY

    # ------------------------------------------------------------------
    # Insert

    cdef int64_t insert_first(self, const double* x) noexcept nogil:
        """The first vector: its end node hangs directly under the root."""
        cdef int64_t n
        if self.grow_children(0) < 0:
            return -1
        n = self.new_node(x, 1, 0, self.n_labels)
        if n < 0:
            return -1
        self.n_labels += 1
        self.add_child(0, n)
        self.absorb(0, x)
        return self.labels[n]

    cdef int64_t nearest_end(self, const double* q, double qnorm, double* out_d) noexcept nogil:
        """The end node an insert joins: the nearest one a width-``insert_beam`` beam reaches
        (greedy descent when the width is 1)."""
        cdef int64_t k = self.insert_beam
        if k == 1:
            return self.descend(q, qnorm, out_d)
        self.beam_in(q, qnorm, k, self.scratch_nodes, self.scratch_d,
                     self.scratch_nodes + 2 * k, self.scratch_d + 2 * k)
        out_d[0] = self.scratch_d[2 * k]
        return self.scratch_nodes[2 * k]

    cdef int64_t insert_one(self, const double* x, double xnorm) noexcept nogil:
        """Insert one vector by the core's mode; its label, or -1 when out of memory."""
        if self.n_children[0] == 0:
            return self.insert_first(x)
        if self.mode == MODE_BALANCED:
            return self.insert_balanced(x, xnorm)
        return self.insert_greedy(x, xnorm)

    cdef int64_t insert_balanced(self, const double* x, double xnorm) noexcept nogil:
        """Join the nearest end node the beam finds, or start a new one beside it; a node
        that gets more than ``max_children`` children is split in two."""
        cdef int64_t e, p, n, label
        cdef double d
        e = self.nearest_end(x, xnorm, &d)
        if d <= self.threshold:
            self.absorb(e, x)
            return self.labels[e]
        p = self.parents[e]
        if self.grow_children(p) < 0:
            return -1
        label = self.n_labels
        n = self.new_node(x, 1, p, label)
        if n < 0:
            return -1
        self.add_child(p, n)
        self.n_labels += 1
        self.absorb(p, x)
        while p >= 0 and self.n_children[p] > self.max_children:
            p = self.split(p)
            if p == -2:
                return -1
        return label

    cdef int set_children(self, int64_t node, const int64_t* kids, int64_t n) noexcept nogil:
        """Make ``kids[:n]`` the children of ``node`` and recompute its value and count
        from theirs (the count-weighted mean); 0, or -1 out of memory."""
        cdef int64_t i, j, c, total = 0
        cdef double* v = self.values + node * self.dim
        cdef const double* cv
        cdef double w
        while self.child_capacity[node] < n:
            self.n_children[node] = self.child_capacity[node]
            if self.grow_children(node) < 0:
                return -1
        self.n_children[node] = 0
        for j in range(self.dim):
            v[j] = 0.0
        for i in range(n):
            c = kids[i]
            self.add_child(node, c)
            total += self.counts[c]
            cv = self.values + c * self.dim
            w = <double>self.counts[c]
            for j in range(self.dim):
                v[j] += cv[j] * w
        for j in range(self.dim):
            v[j] /= <double>total
        self.counts[node] = total
        self.norms[node] = vector_norm(v, self.dim)
        return 0

    cdef void split_centre(self, double* centre, int64_t first, int64_t stop) noexcept nogil:
        """Count-weighted mean of the split's children ``order[first:stop]``."""
        cdef int64_t i, j, c, total = 0
        cdef const double* cv
        for j in range(self.dim):
            centre[j] = 0.0
        for i in range(first, stop):
            c = self.split_kids[self.split_order[i]]
            cv = self.values + c * self.dim
            total += self.counts[c]
            for j in range(self.dim):
                centre[j] += cv[j] * <double>self.counts[c]
        for j in range(self.dim):
            centre[j] /= <double>total

    cdef int64_t split(self, int64_t p) noexcept nogil:
        """Split an over-full node's children in two groups (a few rounds of 2-means on
        their values, each group at least a quarter); returns the parent that gained a
        child (to be checked in turn), -1 at the root, -2 out of memory.

        At the root (node 0, which stays the root) both groups move under two new
        nodes; elsewhere ``p`` keeps one group and a new sibling takes the other.
        """
        cdef int64_t nc = self.n_children[p], i, j, a = 0, b = 0, n_a, lo, t, q, r, gp
        cdef double d, far, ca_norm, cb_norm
        cdef double* ca = self.split_centres
        cdef double* cb = self.split_centres + self.dim
        cdef int round_
        memcpy(self.split_kids, self.children[p], nc * sizeof(int64_t))
        # Seeds: the child farthest from the node's value, and the child farthest from it.
        far = -1.0
        for i in range(nc):
            d = distance(self.values + p * self.dim, self.norms[p],
                         self.values + self.split_kids[i] * self.dim,
                         self.norms[self.split_kids[i]], self.dim, self.metric)
            if d > far:
                far, a = d, i
        far = -1.0
        for i in range(nc):
            d = distance(self.values + self.split_kids[a] * self.dim, self.norms[self.split_kids[a]],
                         self.values + self.split_kids[i] * self.dim,
                         self.norms[self.split_kids[i]], self.dim, self.metric)
            if d > far:
                far, b = d, i
        memcpy(ca, self.values + self.split_kids[a] * self.dim, self.dim * sizeof(double))
        memcpy(cb, self.values + self.split_kids[b] * self.dim, self.dim * sizeof(double))
        lo = max(nc // 4, 1)
        n_a = 1
        for round_ in range(3):
            ca_norm = vector_norm(ca, self.dim)
            cb_norm = vector_norm(cb, self.dim)
            n_a = 0
            for i in range(nc):
                self.split_margin[i] = (
                    distance(ca, ca_norm, self.values + self.split_kids[i] * self.dim,
                             self.norms[self.split_kids[i]], self.dim, self.metric)
                    - distance(cb, cb_norm, self.values + self.split_kids[i] * self.dim,
                               self.norms[self.split_kids[i]], self.dim, self.metric))
                n_a += self.split_margin[i] < 0
                self.split_order[i] = i
            # Children by margin (nearest A first): insertion sort, at most max_children + 1.
            for i in range(1, nc):
                t = self.split_order[i]
                j = i
                while j > 0 and self.split_margin[self.split_order[j - 1]] > self.split_margin[t]:
                    self.split_order[j] = self.split_order[j - 1]
                    j -= 1
                self.split_order[j] = t
            n_a = min(max(n_a, lo), nc - lo)
            self.split_centre(ca, 0, n_a)
            self.split_centre(cb, n_a, nc)
        for i in range(nc):
            self.split_order[i] = self.split_kids[self.split_order[i]]
        if p == 0:
            q = self.new_node(NULL, 0, 0, -1)
            if q < 0:
                return -2
            r = self.new_node(NULL, 0, 0, -1)
            if r < 0:
                return -2
            if self.set_children(q, self.split_order, n_a) < 0 \
                    or self.set_children(r, self.split_order + n_a, nc - n_a) < 0:
                return -2
            self.n_children[0] = 0
            self.add_child(0, q)
            self.add_child(0, r)
            return -1
        gp = self.parents[p]
        if self.grow_children(gp) < 0:
            return -2
        q = self.new_node(NULL, 0, gp, -1)
        if q < 0:
            return -2
        if self.set_children(p, self.split_order, n_a) < 0 \
                or self.set_children(q, self.split_order + n_a, nc - n_a) < 0:
            return -2
        self.add_child(gp, q)
        return gp

    cdef int64_t insert_greedy(self, const double* x, double xnorm) noexcept nogil:
        """The seed reading's insert: greedy descent, then join, pair or append."""
        cdef int64_t e, p, n, inner, i, c, label
        cdef double d, s, ds
        e = self.nearest_end(x, xnorm, &d)
        if d <= self.threshold:
            self.absorb(e, x)
            return self.labels[e]
        # A new identity: compare with the found node's distance to its nearest sibling.
        p = self.parents[e]
        s = INFINITY
        for i in range(self.n_children[p]):
            c = self.children[p][i]
            if c == e:
                continue
            ds = distance(self.values + e * self.dim, self.norms[e],
                          self.values + c * self.dim, self.norms[c], self.dim, self.metric)
            if ds < s:
                s = ds
        label = self.n_labels
        if self.n_children[p] > 1 and d < s:
            # Closer to e than e is to any sibling: pair them under a new internal node
            # that takes e's place (same position) in the parent's child list.
            inner = self.new_node(self.values + e * self.dim, self.counts[e], p, -1)
            if inner < 0:
                return -1
            n = self.new_node(x, 1, inner, label)
            if n < 0:
                free(self.children[inner])
                self.n_nodes -= 1
                return -1
            for i in range(self.n_children[p]):
                if self.children[p][i] == e:
                    self.children[p][i] = inner
                    break
            self.add_child(inner, e)
            self.add_child(inner, n)
            self.n_labels += 1
            self.absorb(inner, x)
            return label
        # Otherwise (or when e has no sibling to compare with) the new end node joins e's parent.
        if self.grow_children(p) < 0:
            return -1
        n = self.new_node(x, 1, p, label)
        if n < 0:
            return -1
        self.add_child(p, n)
        self.n_labels += 1
        self.absorb(p, x)
        return label

    def insert_many(self, const double[:, ::1] x, const double[::1] xnorms,
                    int64_t[::1] out_labels, double[::1] out_times):
        """Insert rows of ``x`` in order; labels and per-vector seconds go to the outputs.

        Returns the number inserted (all rows unless memory ran out, then the caller raises).
        """
        cdef int64_t n = x.shape[0], i = 0, label = 0
        cdef double t0
        # An insert adds an end node, and splits add internal nodes. A split leaves each
        # group at least 2 children (max_children >= 8), so internal nodes never outnumber
        # end nodes; the greedy rule adds at most one internal node per insert.
        self.reserve(max(self.n_nodes + 2 * n, 2 * (self.n_labels + n)) + 16)
        with nogil:
            for i in range(n):
                t0 = now_seconds()
                label = self.insert_one(&x[i, 0], xnorms[i])
                out_times[i] = now_seconds() - t0
                if label < 0:
                    break
                out_labels[i] = label
        return i if label < 0 else n

    def search_many(self, const double[:, ::1] q, const double[::1] qnorms, int64_t k,
                    int64_t[:, ::1] out_nodes, double[:, ::1] out_d, int threads,
                    int64_t width=0):
        """k nearest end nodes (node ids) and distances for every query row; 0 or -1 (memory).

        ``width``: the search's beam (0: the insert's); column 0 is what a width-``width``
        beam finds nearest, which is what an insert would join when ``width`` is the insert's.
        """
        cdef int64_t m = q.shape[0], i
        cdef int failed = 0
        if width < 1:
            width = self.insert_beam
        if k == 1 and width == 1:
            for i in prange(m, nogil=True, schedule="dynamic", chunksize=64, num_threads=threads):
                out_nodes[i, 0] = self.descend(&q[i, 0], qnorms[i], &out_d[i, 0])
            return 0
        for i in prange(m, nogil=True, schedule="dynamic", chunksize=16, num_threads=threads):
            failed += self.search_one(&q[i, 0], qnorms[i], k, width,
                                      &out_nodes[i, 0], &out_d[i, 0]) < 0
        return -1 if failed else 0

    cdef int search_one(self, const double* q, double qnorm, int64_t k, int64_t width,
                        int64_t* out_nodes, double* out_d) noexcept nogil:
        """``k`` end nodes of one query, the nearest a width-``width`` beam finds first;
        0 or -1 (memory).

        Thread-safe (its own scratch): a beam of width ``max(k, width)``; when ``k`` is
        wider, the width-``width`` answer is found apart and moved to the front.
        """
        cdef int64_t w = max(k, width), j
        cdef int64_t* nodes = <int64_t*>malloc(w * sizeof(int64_t))
        cdef double* dists = <double*>malloc(w * sizeof(double))
        cdef int failed = 0
        if nodes == NULL or dists == NULL:
            free(nodes)
            free(dists)
            return -1
        failed = self.beam(q, qnorm, w, nodes, dists)
        for j in range(k):
            out_nodes[j] = nodes[j]
            out_d[j] = dists[j]
        if failed == 0 and w > width:
            if width == 1:
                j = self.descend(q, qnorm, &dists[0])
            else:
                failed = self.beam(q, qnorm, width, nodes, dists)
                j = nodes[0]
            self.insert_answer_first(j, dists[0], k, out_nodes, out_d)
        free(nodes)
        free(dists)
        return failed

    cdef void insert_answer_first(self, int64_t g, double d, int64_t k,
                                  int64_t* nodes, double* dists) noexcept nogil:
        """Put end node ``g`` (what insert would join, at distance ``d``) first in a beam
        result of length k.

        A wider beam can drop the insert's path at some level, so its end node is
        moved (or inserted, dropping the last) to the front; the rest stay nearest first.
        """
        cdef int64_t pos = k - 1, j
        for j in range(k):
            if nodes[j] == g:
                pos = j
                break
        j = pos
        while j > 0:
            nodes[j] = nodes[j - 1]
            dists[j] = dists[j - 1]
            j -= 1
        nodes[0] = g
        dists[0] = d

    # ------------------------------------------------------------------
    # The original code's insert (mode "original"), one step at a time from Python

    def descend_one(self, const double[::1] x, double xnorm):
        """Greedy descent of one vector: (end node, distance); (-1, inf) on an empty tree."""
        cdef double d = INFINITY
        if self.n_children[0] == 0:
            return -1, d
        return self.descend(&x[0], xnorm, &d), d

    def parent_of(self, int64_t node):
        return self.parents[node]

    def child_values(self, int64_t node):
        """Values (float64, (children, dim)) of ``node``'s children, in child order."""
        out = np.empty((self.n_children[node], self.dim), dtype=np.float64)
        cdef double[:, ::1] o = out
        cdef int64_t i
        for i in range(self.n_children[node]):
            memcpy(&o[i, 0], self.values + self.children[node][i] * self.dim,
                   self.dim * sizeof(double))
        return out

    def node_value(self, int64_t node):
        out = np.empty(self.dim, dtype=np.float64)
        cdef double[::1] o = out
        memcpy(&o[0], self.values + node * self.dim, self.dim * sizeof(double))
        return out

    def place_original(self, const double[::1] x, int64_t e, int action):
        """Insert ``x`` as the original code does after its search found end node ``e``:
        ``action`` 0 joins ``e``, 1 appends a new end node to ``e``'s parent, 2 pairs it
        with ``e`` under a new internal node appended to that parent (children: the new
        end node, then ``e``); ``e = -1``: the first vector. Values are then recomputed
        from the children up to the root, as the original does. Returns the label, -1
        when out of memory."""
        cdef int64_t n, p, inner, i, label
        self.reserve(self.n_nodes + 2)
        if e < 0:
            label = self.insert_first(&x[0])
            if label >= 0:
                memcpy(self.sums + self.label_node[label] * self.dim, &x[0],
                       self.dim * sizeof(double))
            return label
        if action == 0:
            for i in range(self.dim):
                self.sums[e * self.dim + i] += x[i]
            self.counts[e] += 1
            self.recompute_up(e)
            return self.labels[e]
        p = self.parents[e]
        label = self.n_labels
        if action == 1:
            if self.grow_children(p) < 0:
                return -1
            n = self.new_node(&x[0], 1, p, label)
            if n < 0:
                return -1
            self.add_child(p, n)
        else:
            if self.grow_children(p) < 0:
                return -1
            inner = self.new_node(NULL, 0, p, -1)
            if inner < 0:
                return -1
            n = self.new_node(&x[0], 1, inner, label)
            if n < 0:
                return -1
            if self.grow_children(inner) < 0:
                return -1
            self.add_child(inner, n)
            # e leaves p's child list (the others keep their order) for the new node's.
            for i in range(self.n_children[p]):
                if self.children[p][i] == e:
                    memmove(self.children[p] + i, self.children[p] + i + 1,
                            (self.n_children[p] - i - 1) * sizeof(int64_t))
                    self.n_children[p] -= 1
                    break
            self.add_child(p, inner)
            self.add_child(inner, e)
        memcpy(self.sums + n * self.dim, &x[0], self.dim * sizeof(double))
        self.n_labels += 1
        self.recompute_up(self.parents[n])
        return label

    cdef void recompute_up(self, int64_t node) noexcept nogil:
        """The original's value update from ``node`` to the root: an end node's value is
        the sum of its vectors over their count; an internal node's, the sum of
        ``value * count`` over its children in child order, over their total."""
        cdef int64_t i, j, c, total
        cdef double* v
        cdef const double* cv
        while node >= 0:
            v = self.values + node * self.dim
            if self.labels[node] >= 0:
                for j in range(self.dim):
                    v[j] = self.sums[node * self.dim + j] / <double>self.counts[node]
            else:
                total = 0
                for i in range(self.n_children[node]):
                    c = self.children[node][i]
                    cv = self.values + c * self.dim
                    total += self.counts[c]
                    if i == 0:
                        for j in range(self.dim):
                            v[j] = cv[j] * <double>self.counts[c]
                    else:
                        for j in range(self.dim):
                            v[j] = v[j] + cv[j] * <double>self.counts[c]
                for j in range(self.dim):
                    v[j] = v[j] / <double>total
                self.counts[node] = total
            self.norms[node] = vector_norm(v, self.dim)
            node = self.parents[node]

    def export_sums(self):
        """The end nodes' sums (mode "original"), (nodes, dim), zero elsewhere."""
        out = np.zeros((self.n_nodes, self.dim), dtype=np.float64)
        cdef double[:, ::1] o = out
        cdef int64_t i
        for i in range(self.n_nodes):
            if self.labels[i] >= 0:
                memcpy(&o[i, 0], self.sums + i * self.dim, self.dim * sizeof(double))
        return out

    def restore_sums(self, const double[:, ::1] sums):
        cdef int64_t i
        for i in range(self.n_nodes):
            memcpy(self.sums + i * self.dim, &sums[i, 0], self.dim * sizeof(double))

    # ------------------------------------------------------------------
    # Inspection and persistence

    def node_labels(self, const int64_t[::1] nodes):
        """Labels of the given end-node ids (-1 stays -1)."""
        out = np.full(nodes.shape[0], -1, dtype=np.int64)
        cdef int64_t[::1] o = out
        cdef int64_t i
        for i in range(nodes.shape[0]):
            if nodes[i] >= 0:
                o[i] = self.labels[nodes[i]]
        return out

    def label_depths(self):
        """Depth (root = 0) of every end node, indexed by label."""
        out = np.empty(self.n_labels, dtype=np.int64)
        cdef int64_t[::1] o = out
        cdef int64_t lab, node, depth
        with nogil:
            for lab in range(self.n_labels):
                node = self.label_node[lab]
                depth = 0
                while self.parents[node] >= 0:
                    node = self.parents[node]
                    depth += 1
                o[lab] = depth
        return out

    def export(self):
        """Copies of the tree as arrays (children in CSR order), for saving."""
        cdef int64_t n = self.n_nodes, i, j, total = 0
        values = np.empty((n, self.dim), dtype=np.float64)
        counts = np.empty(n, dtype=np.int64)
        parents = np.empty(n, dtype=np.int64)
        labels = np.empty(n, dtype=np.int64)
        child_ptr = np.empty(n + 1, dtype=np.int64)
        cdef double[:, ::1] vv = values
        cdef int64_t[::1] cc = counts, pp = parents, ll = labels, ptr = child_ptr
        for i in range(n):
            total += self.n_children[i]
        child_idx = np.empty(total, dtype=np.int64)
        cdef int64_t[::1] idx = child_idx
        if n * self.dim > 0:
            memcpy(&vv[0, 0], self.values, n * self.dim * sizeof(double))
        total = 0
        for i in range(n):
            cc[i] = self.counts[i]
            pp[i] = self.parents[i]
            ll[i] = self.labels[i]
            ptr[i] = total
            for j in range(self.n_children[i]):
                idx[total] = self.children[i][j]
                total += 1
        ptr[n] = total
        return {"values": values, "counts": counts, "parents": parents, "labels": labels,
                "child_ptr": child_ptr, "child_idx": child_idx}

    def restore(self, const double[:, ::1] values, const int64_t[::1] counts,
                const int64_t[::1] parents, const int64_t[::1] labels,
                const int64_t[::1] child_ptr, const int64_t[::1] child_idx, int64_t n_labels):
        """Replace this (fresh) tree by validated arrays from ``export``."""
        cdef int64_t n = values.shape[0], i, j, cnt, cap
        if self.n_nodes != 1 or self.n_children[0] != 0:
            raise ValueError("restore needs a fresh core")
        self.reserve(n)
        free(self.children[0])
        self.n_nodes = 0
        for i in range(n):
            cnt = child_ptr[i + 1] - child_ptr[i]
            cap = FIRST_CHILD_CAPACITY
            while cap < cnt:
                cap *= 2
            self.children[i] = <int64_t*>malloc(cap * sizeof(int64_t))
            if self.children[i] == NULL:
                raise MemoryError("HRI: cannot allocate child lists")
            self.n_nodes = i + 1
            self.child_capacity[i] = cap
            self.n_children[i] = cnt
            for j in range(cnt):
                self.children[i][j] = child_idx[child_ptr[i] + j]
            memcpy(self.values + i * self.dim, &values[i, 0], self.dim * sizeof(double))
            self.norms[i] = vector_norm(self.values + i * self.dim, self.dim)
            self.counts[i] = counts[i]
            self.parents[i] = parents[i]
            self.labels[i] = labels[i]
            if labels[i] >= 0:
                self.label_node[labels[i]] = i
        self.n_labels = n_labels
