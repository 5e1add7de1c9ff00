"""Processing activities (the privacy policy as code) against the real PostgreSQL: kept in the registry document
through GET/PUT and YAML, refused with the path named when wrong, and obeyed by the guard: a purpose of an
activity marked direct_marketing needs the person named and obeys their unsubscribe."""

import copy
import json

import yaml

from tests.conftest import bearer, make_key, seed_document

# Offix's outreach through its reseller: the seed's data-sharing agreement with kontorsgrossen covers `sales`.
SALES_TO_RESELLER = {
    "recipient": "kontorsgrossen",
    "purpose": "sales",
    "data_categories": ["user.contact.email"],
    "destination": "DK",
    "data_subject": "customer",
}
PERSON = "karin.unsubscribed@example.se"


def _as_json(document):
    return json.loads(json.dumps(document, default=str))


async def _export(client, headers):
    response = await client.get("/api/registry", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _activity(**changes):
    activity = copy.deepcopy(seed_document()["controller"]["processing_activities"][2])
    activity.update(changes)
    return activity


async def _put_with_activities(client, headers, activities):
    document = _as_json(seed_document())
    document["controller"]["processing_activities"] = activities
    return await client.put("/api/registry", json=document, headers=headers)


def _fields(response) -> set[str]:
    return {error["key"] for error in response.json()["extra"]}


async def test_the_seeds_activities_come_back_as_written_and_put_back_changes_nothing(client, writer_headers):
    seed = _as_json(seed_document())
    assert (await client.put("/api/registry", json=seed, headers=writer_headers)).status_code == 200
    exported = await _export(client, writer_headers)
    assert exported["controller"]["processing_activities"] == seed["controller"]["processing_activities"]
    assert exported["controller"]["contact"] == seed["controller"]["contact"]
    assert [a["key"] for a in exported["controller"]["processing_activities"]] == [
        "leverans",
        "avtal",
        "kundrelationer",
        "direktmarknadsforing",
    ]
    again = await client.put("/api/registry", json=exported, headers=writer_headers)
    assert again.json()["updated"] == 0 and again.json()["created"] == 0
    assert await _export(client, writer_headers) == exported


async def test_the_yaml_export_imports_back_to_the_same_activities(client, writer_headers):
    await client.put("/api/registry", json=_as_json(seed_document()), headers=writer_headers)
    exported = await _export(client, writer_headers)
    as_yaml = yaml.safe_dump(exported, allow_unicode=True, sort_keys=False)
    put = await client.put(
        "/api/registry", content=as_yaml.encode(), headers={**writer_headers, "Content-Type": "application/yaml"}
    )
    assert put.status_code == 200, put.text
    assert await _export(client, writer_headers) == exported


async def test_a_registry_without_activities_exports_none(client, writer_headers):
    document = _as_json(seed_document())
    del document["controller"]["processing_activities"]
    del document["controller"]["contact"]
    assert (await client.put("/api/registry", json=document, headers=writer_headers)).status_code == 200
    controller = (await _export(client, writer_headers))["controller"]
    assert "processing_activities" not in controller and "contact" not in controller


async def test_an_unknown_legal_basis_is_refused_naming_its_path(client, writer_headers):
    response = await _put_with_activities(client, writer_headers, [_activity(legal_basis="gut_feeling")])
    assert response.status_code == 400
    assert "controller.processing_activities[0].legal_basis" in _fields(response)


async def test_an_unknown_taxonomy_key_is_refused_naming_its_path(client, writer_headers):
    response = await _put_with_activities(
        client, writer_headers, [_activity(purposes=["sales", "selling.harder"], data_categories=["user.aura"])]
    )
    assert response.status_code == 400
    assert {
        "controller.processing_activities[0].purposes[1]",
        "controller.processing_activities[0].data_categories[0]",
    } <= _fields(response)


async def test_a_duplicate_activity_key_is_refused_naming_the_second(client, writer_headers):
    response = await _put_with_activities(client, writer_headers, [_activity(), _activity()])
    assert response.status_code == 400
    assert "controller.processing_activities[1].key" in _fields(response)
    assert "duplicate key 'kundrelationer'" in response.text


async def test_a_refused_document_leaves_the_activities_untouched(client, writer_headers):
    await client.put("/api/registry", json=_as_json(seed_document()), headers=writer_headers)
    before = await _export(client, writer_headers)
    response = await _put_with_activities(client, writer_headers, [_activity(name={"sv": "Bara svenska"})])
    assert response.status_code == 400
    assert "controller.processing_activities[0].name.en" in _fields(response)
    assert await _export(client, writer_headers) == before


async def test_an_activitys_purpose_is_published_even_when_published_purposes_leave_it_out(
    client, writer_headers, guard_headers
):
    document = _as_json(seed_document())
    document["controller"]["published_purposes"] = ["essential.service"]
    assert (await client.put("/api/registry", json=document, headers=writer_headers)).status_code == 200
    share = {**SALES_TO_RESELLER, "subject_ref": "olle@example.se"}
    answer = (await client.post("/api/guard/check", json=share, headers=guard_headers)).json()
    assert answer["allowed"] is True, answer
    unpublished = {**share, "purpose": "marketing.advertising"}
    answer = (await client.post("/api/guard/check", json=unpublished, headers=guard_headers)).json()
    assert "PURPOSE_NOT_PUBLISHED" in {r["code"] for r in answer["reasons"]}


async def test_an_unsubscribed_persons_email_to_the_reseller_for_sales_is_refused(seeded_database, client):
    guard = bearer(await make_key(seeded_database, "crm", "guard:check"))
    writer = bearer(await make_key(seeded_database, "privacy", "registry:read", "registry:write"))
    named = {**SALES_TO_RESELLER, "subject_ref": PERSON}
    before = (await client.post("/api/guard/check", json=named, headers=guard)).json()
    assert before["allowed"] is True, before

    unsubscribe = {"subject": PERSON, "scope": "direct_marketing", "received_on": "2026-11-02", "source": "mail-out"}
    assert (await client.post("/api/objections", json=unsubscribe, headers=writer)).status_code == 201

    after = (await client.post("/api/guard/check", json=named, headers=guard)).json()
    assert after["allowed"] is False
    assert {r["code"] for r in after["reasons"]} == {"SUBJECT_OBJECTED"}
    anonymous = (await client.post("/api/guard/check", json=SALES_TO_RESELLER, headers=guard)).json()
    assert anonymous["allowed"] is False
    assert {r["code"] for r in anonymous["reasons"]} == {"SUBJECT_REF_MISSING"}
    # A delivery to a processor for the same person is not direct marketing: the unsubscribe does not touch it.
    delivery = {
        "recipient": "nordfrakt",
        "purpose": "essential.service.operations",
        "data_categories": ["user.name", "user.contact.address"],
        "destination": "SE",
        "data_subject": "customer",
        "subject_ref": PERSON,
    }
    assert (await client.post("/api/guard/check", json=delivery, headers=guard)).json()["allowed"] is True


# --- The Art. 30 record per activity ---------------------------------------------------------------------------

ART30_FIELDS = {
    "name", "purposes", "legal_basis", "data_subjects", "data_categories", "recipients", "transfers", "retention",
    "security_measures",
}  # fmt: skip


async def test_the_record_names_the_controller_and_every_art30_field_of_each_activity(seeded_database, client):
    reader = bearer(await make_key(seeded_database, "dpo", "registry:read"))
    crm = bearer(await make_key(seeded_database, "crm", "guard:check"))
    share = {**SALES_TO_RESELLER, "subject_ref": PERSON}
    assert (await client.post("/api/guard/check", json=share, headers=crm)).json()["allowed"] is True
    record = (await client.get("/api/records/article-30", headers=reader)).json()

    seed = seed_document()["controller"]
    assert record["controller"]["name"] == "Offix AB"
    assert record["controller"]["contact"] == seed["contact"]
    assert [a["key"] for a in record["activities"]] == [a["key"] for a in seed["processing_activities"]]
    for activity, written in zip(record["activities"], seed["processing_activities"], strict=True):
        assert activity.keys() >= ART30_FIELDS
        assert activity["name"] == written["name"]["en"]
        assert activity["retention"] == written["retention"]["en"]
        assert activity["security_measures"] == written["security_measures"]["en"]
        assert (activity["purposes"], activity["legal_basis"]) == (written["purposes"], written["legal_basis"])
        assert activity["data_subjects"] == written["data_subjects"]
        assert activity["data_categories"] == written["data_categories"]
        assert activity["transfers"] == []  # nothing of the seed leaves the EEA

    sales = next(a for a in record["activities"] if a["key"] == "kundrelationer")
    assert sales["direct_marketing"] is True
    assert sales["legal_basis_text"] == "legitimate interests (Art. 6(1)(f))"
    recipients = {r["key"]: r for r in sales["recipients"]}
    # Derived: the reseller's data-sharing agreement and the IT processor's dpa cover `sales`; the processor's
    # sub-processor chain receives it through kvarnberg.
    assert {"kontorsgrossen", "kvarnberg", "molnhall"} <= recipients.keys()
    assert "nordfrakt" not in recipients  # its dpa covers deliveries only
    assert recipients["molnhall"]["role"] == "sub_processor"
    assert recipients["kontorsgrossen"]["guard"] == "allowed"
    assert recipients["kontorsgrossen"]["transfers_outside_eea_permitted"] is False
    assert recipients["kontorsgrossen"]["enforcement"] == {"shares_allowed": 1, "shares_denied": 0}
    delivery = next(a for a in record["activities"] if a["key"] == "leverans")
    assert next(r for r in delivery["recipients"] if r["key"] == "kontorsgrossen" or r["key"] == "nordfrakt")[
        "enforcement"
    ] == {"shares_allowed": 0, "shares_denied": 0}


async def test_a_place_outside_the_eea_is_a_transfer_refused_by_policy_and_a_permitting_agreement_is_flagged(
    client, writer_headers, reader_headers
):
    document = _as_json(seed_document())
    reseller = next(p for p in document["parties"] if p["key"] == "kontorsgrossen")
    reseller["locations"].append({"territory": "US", "kind": "support_access"})
    supplier = next(a for a in document["agreements"] if a["key"] == "papyra-sharing-2025")
    supplier["transfers_outside_eea_permitted"] = True
    assert (await client.put("/api/registry", json=document, headers=writer_headers)).status_code == 200
    record = (await client.get("/api/records/article-30", headers=reader_headers)).json()

    sales = next(a for a in record["activities"] if a["key"] == "kundrelationer")
    (transfer,) = [t for t in sales["transfers"] if t["party"] == "kontorsgrossen"]
    assert (transfer["territory"], transfer["kind"], transfer["decision"]) == (
        "US",
        "support_access",
        "refused_by_policy",
    )
    assert transfer["safeguards"] is None
    reseller_entry = next(r for r in sales["recipients"] if r["key"] == "kontorsgrossen")
    assert reseller_entry["guard"] == "refused" and "LOCATION_OUTSIDE_EEA" in reseller_entry["guard_reasons"]

    delivery = next(a for a in record["activities"] if a["key"] == "leverans")
    papyra = next(r for r in delivery["recipients"] if r["key"] == "papyra")
    assert papyra["transfers_outside_eea_permitted"] is True
    assert papyra["permitting_agreements"] == ["papyra-sharing-2025"]
    (flagged,) = [t for t in delivery["transfers"] if t["party"] == "papyra"]
    assert flagged["transfers_outside_eea_permitted"] is True and flagged["decision"] == "refused_by_policy"


async def test_the_record_speaks_swedish_by_accept_language_in_json_and_csv(seeded_database, client):
    reader = bearer(await make_key(seeded_database, "dpo", "registry:read"))
    swedish = {**reader, "Accept-Language": "sv-SE,sv;q=0.9"}
    record = (await client.get("/api/records/article-30", headers=swedish)).json()
    sales = next(a for a in record["activities"] if a["key"] == "kundrelationer")
    assert sales["name"] == "Skötsel av kundrelationer"
    assert sales["legal_basis_text"] == "berättigat intresse (art. 6.1 f)"
    assert sales["purposes_text"] == ["Skötsel av kundrelationer"]
    assert sales["retention"].startswith("Personuppgifter lagras inte längre")
    as_csv = await client.get("/api/records/article-30", params={"format": "csv"}, headers=swedish)
    assert as_csv.text.startswith("\ufeff")  # a byte order mark, so that Excel reads the Swedish letters
    header = as_csv.text.lstrip("\ufeff").splitlines()[0]
    assert header.startswith("Behandling;Benämning")  # `;`, the list separator of a Swedish spreadsheet
    assert "Gallringsfrister" in header and "Säkerhetsåtgärder" in header


# --- The privacy notice ------------------------------------------------------------------------------------------


async def test_the_notice_names_the_recipients_and_the_transfer_sentence_in_swedish_and_english(
    seeded_database, client
):
    reader = bearer(await make_key(seeded_database, "dpo", "registry:read"))
    swedish = (await client.get("/api/records/privacy-notice", headers={**reader, "Accept-Language": "sv"})).json()
    english = (await client.get("/api/records/privacy-notice", headers={**reader, "Accept-Language": "en"})).json()
    assert swedish["title"] == "Till vem överlåter vi uppgifter och överlåter vi uppgifter utanför EU eller EES?"
    assert swedish["transfer_sentence"] == "Vi överlåter inga personuppgifter utanför EU/EES-området."
    assert english["transfer_sentence"] == "We do not transfer any personal data outside the EU/EEA."
    assert "Under tvingande omständigheter kan uppgifter lämnas ut till myndigheter." in swedish["paragraphs"]
    sales_sv = next(a for a in swedish["activities"] if a["key"] == "kundrelationer")
    assert sales_sv["text"].startswith("Skötsel av kundrelationer: ")
    assert "Kontorsgrossen Danmark ApS (återförsäljare, självständigt personuppgiftsansvarig)" in sales_sv["text"]
    sales_en = next(a for a in english["activities"] if a["key"] == "kundrelationer")
    assert "Kontorsgrossen Danmark ApS (reseller, independent controller)" in sales_en["text"]
    assert any(
        p.startswith("Vi kan komma att dela personuppgifter med leverantörer, tillverkare och återförsäljare för:")
        and "Skötsel av kundrelationer" in p
        for p in swedish["paragraphs"]
    )
    assert any("manufacturers, resellers and suppliers" in p for p in english["paragraphs"])


async def test_a_recipient_the_guard_refuses_is_not_named_in_the_notice(client, writer_headers, reader_headers):
    document = _as_json(seed_document())
    reseller = next(p for p in document["parties"] if p["key"] == "kontorsgrossen")
    reseller["locations"].append({"territory": "US", "kind": "support_access"})
    assert (await client.put("/api/registry", json=document, headers=writer_headers)).status_code == 200
    notice = (await client.get("/api/records/privacy-notice", headers=reader_headers)).json()
    assert "Kontorsgrossen" not in notice["text"]
    assert notice["transfer_sentence"] == "We do not transfer any personal data outside the EU/EEA."
    assert [w["key"] for w in notice["withheld"]] == ["kontorsgrossen"]


async def test_the_notice_is_outdated_until_marked_published_and_again_after_a_change_that_alters_it(
    client, writer_headers, reader_headers
):
    await client.put("/api/registry", json=_as_json(seed_document()), headers=writer_headers)
    never = (await client.get("/api/records/privacy-notice", headers=reader_headers)).json()
    assert [(f["code"], f["blocks"]) for f in never["findings"]] == [("NOTICE_OUTDATED", False)]
    assert (await client.post("/api/records/privacy-notice/published", headers=reader_headers)).status_code == 403
    marked = await client.post("/api/records/privacy-notice/published", headers=writer_headers)
    assert marked.status_code == 201, marked.text
    current = (await client.get("/api/records/privacy-notice", headers=reader_headers)).json()
    assert current["findings"] == [] and current["published"]["digest"] == current["digest"]

    document = _as_json(seed_document())
    document["agreements"] = [a for a in document["agreements"] if a["party"] != "kontorsgrossen"]
    assert (await client.put("/api/registry", json=document, headers=writer_headers)).status_code == 200
    outdated = (await client.get("/api/records/privacy-notice", headers=reader_headers)).json()
    assert [f["code"] for f in outdated["findings"]] == ["NOTICE_OUTDATED"]
    assert "Kontorsgrossen" in outdated["published"]["text"] and "Kontorsgrossen" not in outdated["text"]
