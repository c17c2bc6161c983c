# Native twin of pyrallel_consumer/engines/lane_placement.py: the same `LanePlacement`, with
# the same behaviour (that module's docstring says where each record goes and why).
#
# Why it is faster: the pure `place` and `reported` run once per record on the control thread
# and cost it 0.4-0.8 us per record on the process engine's zero-work path, in interpreted
# dict and list updates. Here the loops are C loops over this module's WorkItems and Reports,
# a lane's worker and count are C fields, the workers' loads a C array, and each record costs
# one insert and one pop in the id map and one lookup in the lane map.
# Not thread-safe, like the twin: the process engine calls it on the control thread only.

from cpython.mem cimport PyMem_Free, PyMem_Malloc


cdef class _Held:
    """A lane some worker holds records of: the lane, which worker, and how many records."""

    cdef object lane
    cdef Py_ssize_t worker
    cdef Py_ssize_t count


cdef class LanePlacement:
    """Places work items on `workers` workers (see the twin)."""

    cdef Py_ssize_t _workers
    cdef dict _lanes  # lane -> its _Held
    cdef dict _held  # the id of each placed record of a lane -> its lane's _Held
    cdef Py_ssize_t *_load  # records of lanes each worker holds
    cdef Py_ssize_t _next_unordered

    def __cinit__(self, Py_ssize_t workers):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._load = <Py_ssize_t *>PyMem_Malloc(workers * sizeof(Py_ssize_t))
        if self._load == NULL:
            raise MemoryError()
        cdef Py_ssize_t w
        for w in range(workers):
            self._load[w] = 0
        self._workers = workers
        self._lanes = {}
        self._held = {}
        self._next_unordered = 0

    def __dealloc__(self):
        PyMem_Free(self._load)

    cdef Py_ssize_t _least_loaded(self):
        """The worker holding the fewest records of lanes (the first of equals)."""
        cdef Py_ssize_t best = 0, w
        for w in range(1, self._workers):
            if self._load[w] < self._load[best]:
                best = w
        return best

    def place(self, items):
        """The items each worker is to run, in submission order: [worker 0's, ...]."""
        cdef Py_ssize_t n = self._workers, k, start
        cdef list placed = [[] for _ in range(n)]
        cdef list unordered = []
        cdef dict lanes = self._lanes, held = self._held
        cdef _Held entry
        for item in items:
            if type(item) is WorkItem:
                lane = (<WorkItem>item).lane
                item_id = (<WorkItem>item).id
            else:
                lane = item.lane
                item_id = item.id
            if lane is None:
                unordered.append(item)
                continue
            found = lanes.get(lane)
            if found is None:
                entry = _Held.__new__(_Held)
                entry.lane = lane
                entry.worker = self._least_loaded()
                entry.count = 0
                lanes[lane] = entry
            else:
                entry = <_Held>found
            entry.count += 1
            self._load[entry.worker] += 1
            held[item_id] = entry
            (<list>placed[entry.worker]).append(item)
        if unordered:
            # Unordered record j of this call goes to worker (start + j) % workers.
            start = self._next_unordered
            for k in range(n):
                (<list>placed[(start + k) % n]).extend(unordered[k::n])
            self._next_unordered = (start + len(unordered)) % n
        return placed

    def reported(self, reports):
        """These records' reports came back: their workers no longer hold them."""
        for report in reports:
            if type(report) is GroupReport:
                for item_id in (<GroupReport>report).ids:
                    self._release(item_id)
            elif type(report) is Report:
                self._release((<Report>report).id)
            else:  # another class's (the pure twins', in the tests)
                ids = getattr(report, "ids", None)
                for item_id in ids if ids is not None else (report.id,):
                    self._release(item_id)

    cdef int _release(self, object item_id) except -1:
        found = self._held.pop(item_id, None)
        if found is None:
            return 0  # unordered (never counted), or reported twice
        cdef _Held entry = <_Held>found
        self._load[entry.worker] -= 1
        entry.count -= 1
        if not entry.count:
            del self._lanes[entry.lane]
        return 0
