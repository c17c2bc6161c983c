# cython: language_level=3
"""The record path in C: pyrallel_consumer._record_path, the native twin of nine pure-Python
modules (pyrallel_consumer/native.py binds its names in their place):

    records.pxi          Record (record.py); WorkItem, Report, GroupReport (work.py)
    backlog.pxi          Backlog, record_bytes, batch_bytes (backlog.py)
    partition_state.pxi  PartitionState (control/partition_state.py)
    intake.pxi           intake (control/intake.py)
    completing.pxi       unrevoked, complete_offsets, completions (control/completing.py)
    in_flight.pxi        dispatch, settle (control/in_flight.py)
    batch_assembly.pxi   Batch, BatchAssembler (engines/batch_assembly.py)
    lane_table.pxi       Lanes (engines/lane_table.py), on the lane runners' threads

One extension rather than one per file: the intake builds records and work items, records
offsets in partition states and queues work items in the backlog, the settling gives lane slots
back to the backlog, the completions read records and mark offsets, and batch mode's assembly
reads lanes, once per record each. Within one module these are C calls on typed
objects; across modules they would go through Python's attribute and call protocol (or need
.pxd files found under the package's import path at build time, for every wheel). Each .pxi
keeps one job, with the comment at its top saying which twin it mirrors and why it is faster.
"""

# The structures this build has twins of: pyrallel_consumer/native.py refuses a structure a
# build from older sources lacks (ImportError, so that `auto` falls back to its pure twin).
STRUCTURES = frozenset({
    "record", "work", "backlog", "partition_state", "intake", "completing", "in_flight",
    "batch_assembly", "lanes",
})

include "records.pxi"
include "backlog.pxi"
include "partition_state.pxi"
include "intake.pxi"
include "completing.pxi"
include "in_flight.pxi"
include "batch_assembly.pxi"
include "lane_table.pxi"
