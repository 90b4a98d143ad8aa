"""MMLU from the hub (cais/mmlu): one config per subject (and "all"), splits dev (5 solved questions
per subject), validation and test; columns question, subject, choices, answer (0-3).

Categories follow the benchmark's authors (Hendrycks et al. 2021): STEM, humanities, social sciences, other.
"""

from __future__ import annotations

from typing import Any

HUB_ID = "cais/mmlu"

_CATEGORY_SUBJECTS = {
    "STEM": (
        "abstract_algebra astronomy college_biology college_chemistry college_computer_science "
        "college_mathematics college_physics computer_security conceptual_physics electrical_engineering "
        "elementary_mathematics high_school_biology high_school_chemistry high_school_computer_science "
        "high_school_mathematics high_school_physics high_school_statistics machine_learning"
    ),
    "humanities": (
        "formal_logic high_school_european_history high_school_us_history high_school_world_history "
        "international_law jurisprudence logical_fallacies moral_disputes moral_scenarios philosophy "
        "prehistory professional_law world_religions"
    ),
    "social sciences": (
        "econometrics high_school_geography high_school_government_and_politics high_school_macroeconomics "
        "high_school_microeconomics high_school_psychology human_sexuality professional_psychology "
        "public_relations security_studies sociology us_foreign_policy"
    ),
    "other": (
        "anatomy business_ethics clinical_knowledge college_medicine global_facts human_aging management "
        "marketing medical_genetics miscellaneous nutrition professional_accounting professional_medicine "
        "virology"
    ),
}
CATEGORIES = {
    subject: category for category, names in _CATEGORY_SUBJECTS.items() for subject in names.split()
}


def load_mmlu_rows(split: str, subjects: list[str]) -> list[dict[str, Any]]:
    """The rows of one split, for the given subjects (all 57 when empty), each with its category."""
    from datasets import load_dataset

    unknown = sorted(set(subjects) - set(CATEGORIES))
    if unknown:
        raise ValueError(
            f"task.eval_subjects has subjects MMLU does not have: {', '.join(unknown)}. "
            f"Its subjects: {', '.join(sorted(CATEGORIES))}."
        )
    rows: list[dict[str, Any]] = []
    for config in subjects or ["all"]:
        rows += [dict(row) for row in load_dataset(HUB_ID, config, split=split)]
    for row in rows:
        row["category"] = CATEGORIES.get(row["subject"])
    return rows
