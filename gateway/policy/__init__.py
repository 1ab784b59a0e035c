"""Regional policy packs (profiles/policy/<region>.yaml) and the domain rules that read them."""
