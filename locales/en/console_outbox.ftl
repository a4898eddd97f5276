# Admin console, mail outbox: each list of waiting messages is paged
ops-shown = { $shown } of { $total } shown, the soonest due first.
