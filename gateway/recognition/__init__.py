"""Mutual recognition of results (检查检验结果互认): the rules as data (rules.py), what an
institution is for them (institutions.py), the decision (decide.py)."""
