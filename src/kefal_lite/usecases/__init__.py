"""One module per thing people do. Each use case takes a connection (it runs inside the
writer's transaction) or the database, plus the actor; it checks the rule, writes, records
its audit row in the same transaction, and raises domain errors named by meaning. `api/`
and `cli.py` both call these; neither re-implements a rule."""
