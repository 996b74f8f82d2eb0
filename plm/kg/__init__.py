"""Knowledge-graph tools: the entity linker (linker.py); graphs themselves are plm/data/kg.py."""
