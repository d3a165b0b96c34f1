"""Model cards in transferred model directories: Hub-parsable headers, content-derived bodies."""

from __future__ import annotations

from huggingface_hub import ModelCard

from salt_transfer.modelcard import license_id, model_card


def test_card_header_parses_with_the_hub_parser(tmp_path):
    text = model_card(
        title="t",
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        language="es",
        license="Apache-2.0",
        method="salt",
        sections={
            "Transfer": {"method": "salt", "target vocabulary": 10138},
            "Provenance (sha256)": {"a": "b" * 64},
        },
    )
    (tmp_path / "README.md").write_text(text)
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert card.data.language == "es" and card.data.library_name == "transformers"
    assert card.data.license == "apache-2.0" and "salt" in card.data.tags
    assert "| target vocabulary | 10138 |" in card.text


def test_licenses_map_to_hub_identifiers():
    assert license_id("Apache-2.0") == "apache-2.0" and license_id("MIT") == "mit"
    assert license_id("Gemma Terms of Use") == "gemma" and license_id("") is None


def test_the_trained_models_card_carries_the_transfer_table_over(tmp_path):
    """pretrain's card repeats the transferred model's Transfer table (cell name, options, counts)."""
    from salt_transfer.pretrain import _card_table

    transfer = {"method": "`salt-robust` (salt; Lee et al.)", "method options": '{"ridge": 0.1}', "seed": 0}
    text = model_card(
        title="t", base_model=None, language="es", license=None, method="salt",
        sections={"Transfer": transfer, "Provenance (sha256)": {"a": "b" * 64}},
    )  # fmt: skip
    (tmp_path / "README.md").write_text(text)
    assert _card_table(tmp_path / "README.md", "Transfer") == {k: str(v) for k, v in transfer.items()}
    assert _card_table(tmp_path / "missing.md", "Transfer") == {}
