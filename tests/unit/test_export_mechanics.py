"""The shared export mechanics: CSV a spreadsheet opens right (byte order mark, the locale's delimiter, no cell
it would evaluate as a formula), workbooks with real dates and an autofilter, download names that keep their
Swedish letters (RFC 6266)."""

import csv
import io
from datetime import date

from openpyxl import load_workbook

from registry.services.agreement_documents import safe_filename
from registry.services.exports import csv_delimiter, csv_document, workbook
from web.controllers.exports import content_disposition


def read(body: bytes, delimiter: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=delimiter))


def test_a_csv_starts_with_a_byte_order_mark_so_excel_reads_swedish_letters():
    body = csv_document(["name"], [["Bergström"]])
    assert body.startswith(b"\xef\xbb\xbf")
    assert read(body, ",") == [["name"], ["Bergström"]]


def test_a_swedish_csv_is_separated_by_semicolons_and_an_english_one_by_commas():
    assert csv_delimiter("sv") == ";" and csv_delimiter("en") == "," and csv_delimiter(None) == ","
    body = csv_document(["a", "b"], [["1,5", "x"]], delimiter=";")
    assert body.decode("utf-8-sig").splitlines() == ["a;b", "1,5;x"]


def test_every_cell_a_spreadsheet_would_evaluate_is_neutralised():
    hostile = ['=HYPERLINK("http://evil")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1", "plain", "a=b"]
    rows = read(csv_document(["cell"] * len(hostile), [hostile]), ",")
    assert rows[1] == ["'" + v for v in hostile[:6]] + ["plain", "a=b"]


def test_a_workbook_has_real_dates_and_an_autofilter_on_every_sheet():
    body = workbook(
        [("Agreements", ["key", "expires_on", "note"], [["a", "2026-12-31", "=1+1"], ["b", date(2027, 1, 1), ""]])]
    )
    sheet = load_workbook(io.BytesIO(body))["Agreements"]
    assert sheet["B2"].value.date() == date(2026, 12, 31) and sheet["B2"].is_date
    assert sheet["B3"].value.date() == date(2027, 1, 1)
    assert sheet["C2"].value == "=1+1" and sheet["C2"].data_type == "s"
    assert sheet.auto_filter.ref == "A1:C3"


def test_a_download_name_keeps_its_swedish_letters_with_an_ascii_fallback():
    assert safe_filename("Avtal Bergström & Söner.pdf", "key") == "Avtal-Bergström-Söner.pdf"
    header = content_disposition("Avtal-Bergström-Söner.pdf")
    assert header == (
        "attachment; filename=\"Avtal-Bergstr_m-S_ner.pdf\"; filename*=UTF-8''Avtal-Bergstr%C3%B6m-S%C3%B6ner.pdf"
    )
    assert content_disposition("registry.xlsx") == 'attachment; filename="registry.xlsx"'
