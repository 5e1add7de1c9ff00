"""Swedish and English: message catalogues, the locale of the request (or e-mail) at hand, and
locale-aware dates, numbers and country names.

Catalogues are the gettext `.po` files under kernel/locale/; they are compiled in memory (Babel's
`write_mo`) the first time a language is used, so a fresh clone needs no build step and a `.po` edit is
never shadowed by a stale `.mo`. English is the source language: its catalogue may override wording, and
any message it leaves empty is the English source text.

The current locale is a context variable: the UI sets it per request (web.ui.language), e-mail and
calendar code set it for the recipient with `use_locale`. Templates use the same functions through
Jinja's i18n extension, so Python code and templates always agree."""

import gettext as _gettext
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

import pycountry
from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGUAGES: tuple[str, ...] = ("sv", "en")
LANGUAGE_NAMES = {"sv": "Svenska", "en": "English"}  # each in its own language, as a switch shows them
DOMAIN = "messages"

_current: ContextVar[str] = ContextVar("registry_locale", default="en")


@cache
def translations(language: str) -> _gettext.NullTranslations:
    """The compiled catalogue of one language (English without a catalogue: the source text)."""
    po = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not po.is_file():
        return _gettext.NullTranslations()
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    buffer = BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return _gettext.GNUTranslations(buffer)


def current() -> str:
    return _current.get()


def set_locale(language: str) -> None:
    """The locale for the rest of this task (one request): the UI calls it before its handlers run."""
    _current.set(language if language in LANGUAGES else "en")


@contextmanager
def use_locale(language: str) -> Iterator[None]:
    """The locale for a block (an e-mail to one owner, a calendar feed)."""
    token = _current.set(language if language in LANGUAGES else "en")
    try:
        yield
    finally:
        _current.reset(token)


def gettext(message: str) -> str:
    return translations(_current.get()).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(_current.get()).ngettext(singular, plural, n)


_ = gettext


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; it is translated where it is shown."""
    return message


def negotiate(remembered: str | None, chosen: str | None, accept_language: str | None, default: str) -> str:
    """The user's remembered choice, else this browser's switch (cookie), else its Accept-Language, else the
    configured default."""
    for candidate in (remembered, chosen):
        if candidate in LANGUAGES:
            return str(candidate)
    if accept_language:
        for language in _accepted(accept_language):
            if language in LANGUAGES:
                return language
    return default if default in LANGUAGES else "en"


def _accepted(header: str) -> list[str]:
    """Accept-Language's languages by preference (RFC 9110 §12.5.4); malformed parts are skipped."""
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header[:1000].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        language = tag.strip().split("-")[0].lower()
        if language and quality > 0:
            weighted.append((-quality, index, language))
    return [language for _, _, language in sorted(weighted)]


def _babel_locale() -> Locale:
    try:
        return Locale.parse(_current.get())
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def day(value: Any, style: str = "medium") -> str:
    """A calendar date for the reader: '28 nov. 2026' in Swedish, 'Nov 28, 2026' in English."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = value.date()
    return str(format_date(value, format=style, locale=_babel_locale()))


def moment(value: datetime, pattern: str) -> str:
    return str(format_datetime(value, pattern, locale=_babel_locale()))


def number(value: int | float) -> str:
    """A count for the reader: '1 234' in Swedish, '1,234' in English."""
    return str(format_decimal(value, locale=_babel_locale()))


@cache
def _country_translations(language: str) -> _gettext.NullTranslations:
    if language == "en":
        return _gettext.NullTranslations()
    try:
        return _gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[language])
    except OSError:  # pycountry without that language: the English names
        return _gettext.NullTranslations()


def country_name(english_name: str) -> str:
    """pycountry's English country name in the current language (pycountry's own translations)."""
    return _country_translations(_current.get()).gettext(english_name)
