# Native twin of pyrallel_consumer/control/in_flight.py: `dispatch` and `settle`, with the same
# behaviour (that module's docstring says what each does).
#
# Why it is faster: the pure loops store and pop the in-flight map through method calls and
# give each lane slot back through the backlog's Python `done`. Here the map is touched with
# the C dict calls, this module's WorkItem fields are set directly and `done` is a C call on
# this module's Backlog, once per run of one lane's items. Objects of other classes take the
# Python route.

from cpython.dict cimport PyDict_SetItem


def dispatch(items, dict in_flight, now):
    """Put `items` in flight, by id, dispatched at `now`."""
    cdef WorkItem item
    for obj in items:
        if type(obj) is WorkItem:
            item = <WorkItem>obj
            PyDict_SetItem(in_flight, item.id, item)
            item.dispatched_at = now
        else:
            in_flight[obj.id] = obj
            obj.dispatched_at = now


def settle(item_ids, dict in_flight, set released, backlog):
    """Take the items of `item_ids` out of flight, giving their lane slots back to `backlog`
    unless `released` has them; returns the items that were in flight. Consecutive items of one
    lane give their slots back in one call (a batch's items are grouped by lane)."""
    cdef Backlog native_backlog = backlog if type(backlog) is Backlog else None
    cdef list items = []
    cdef object run_lane = None
    cdef Py_ssize_t run = 0
    for item_id in item_ids:
        item = in_flight.pop(item_id, None)
        if item is None:
            continue
        items.append(item)
        if released and item_id in released:
            released.discard(item_id)
            continue
        lane = (<WorkItem>item).lane if type(item) is WorkItem else item.lane
        if native_backlog is None:
            backlog.done(lane)
        elif run and lane is run_lane:
            run += 1
        else:
            if run:
                native_backlog._done(run_lane, run)
            run_lane, run = lane, 1
    if run:
        native_backlog._done(run_lane, run)
    return items
