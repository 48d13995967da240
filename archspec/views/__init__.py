"""Views of a compiled spec, computed from the IR and its counts alone (no torch, no weights).

    structure    dotted layer names -> nested groups (blocks, repeats, copies) and stages
    graph        IR -> Graphviz DOT (blocks as clusters, repeats collapsed) -> svg/png/pdf/html via `dot`
    card         IR + counts + spec source -> one self-contained HTML page
    diff         two IRs -> layers added, removed, changed; params/MACs deltas per stage
    fingerprint  IR -> canonical SHA-256 (a backend's cache key starts from it)

Each needs only what its own output needs: graphviz (the Python binding and the `dot` program) for
pictures, jinja2 for the card; diff and fingerprint need nothing beyond the core.
"""
