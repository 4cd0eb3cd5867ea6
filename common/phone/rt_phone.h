/*
 * rt_phone: one phone number, one spelling (E.164), for every channel.
 *
 * A customer who writes from Viber, calls the shop and leaves a number in
 * the web chat is one customer only when the three numbers are spelled
 * alike: routerd matches customers across channels on the E.164 form
 * ("+380671112233"), so every channel normalises through this one function
 * and none keeps a normaliser of its own.
 *
 * What is read: '+' and the country calling code ("+38 (067) 111-22-33",
 * "+1 (415) 555-2671"); the international prefix dialled from the default
 * country ("00380671112233", "011..." from US/CA); the national form of the
 * default country, with its trunk prefix ("067 111 22 33", "0671112233",
 * UA's old long-distance "80671112233", HU's "06 ..."); digits that start
 * with a known country code and fit its length, as Telegram and WhatsApp
 * send them ("380671112233"); a leading "tel:" or "whatsapp:" (Twilio's
 * "whatsapp:+1415..."). Separators are dropped: spaces (also no-break and
 * the other Unicode spaces), tabs, '-', '.', '/', '(', ')', the Unicode
 * dashes and invisible direction marks. "(0)" after the country code
 * ("+44 (0)20 ...", "+380 (0)67 ...") is dropped for countries whose trunk
 * prefix is 0, since no national number of theirs starts with 0.
 *
 * In that order: '+' first, then the international prefix, then the default
 * country's national form, then digits read as international. A national
 * form is read only with its trunk prefix where the country has one
 * ("671112233" in UA is refused: it is not how anyone there writes it, and
 * a refusal costs less than a customer merged with a stranger); where the
 * country has none (PL, CZ, ES, IT, LV, EE) or it is optional (US/CA's 1),
 * the bare national number is read. Digits without '+' are read as
 * international only when their country code is one of the table below,
 * whose length confirms the reading; "501234567" is not taken for Belize.
 *
 * Refused, with the reason in `why` and never a guess: letters (other than
 * the prefixes above), an extension ("ext", "x", "доб.", '#', ',' or
 * ";ext=": refused, not stripped, because a number with an extension is an
 * office line that many people share, and routerd would merge them into one
 * customer), tel: parameters, '+' anywhere but first, too few or too many
 * digits (E.164 allows 15), a country calling code the ITU has not
 * assigned, and a national number of the wrong length for a country in the
 * table. +1 numbers are also checked for NANP's rule that the area code and
 * the exchange start with 2 to 9.
 *
 * Why a table of our own and not libphonenumber: Debian's libphonenumber-dev
 * (8.12.57 on bookworm, with data of 2022) is C++ only; a C shim would bring
 * C++, libstdc++, the C++ protobuf runtime and abseil (20 packages with
 * boost for the build) into every daemon that links this, for a job that
 * needs the country codes and each country's number lengths, not its
 * number ranges or formatting. Distribution updates would also move its
 * data under us silently. So the table is here, small, tested and read in
 * one place: the country calling codes are the ITU's list of assigned codes
 * (Complement to ITU-T E.164, "List of ITU-T Recommendation E.164 assigned
 * country codes"), and the national lengths, trunk and international
 * prefixes of the countries below are from each country's plan as
 * published to the ITU (E.164 national numbering plans). A country absent
 * from the table still has its numbers accepted in international form with
 * 7 to 15 digits.
 *
 *   UA +380 9 (0)   PL +48 9       MD +373 8 (0)  RO +40 9 (0)
 *   SK +421 9 (0)   HU +36 8-9 (06) DE +49 5-13 (0) GB +44 9-10 (0)
 *   US/CA +1 10 (1) KZ/RU +7 10 (8) GE +995 9 (0) LT +370 8 (8, 0)
 *   LV +371 8       EE +372 7-8    CZ +420 9      IT +39 6-11
 *   FR +33 9 (0)    ES +34 9       TR +90 10 (0)  IL +972 8-9 (0)
 *
 * Thread-safe: no state.
 */
#ifndef RT_PHONE_H
#define RT_PHONE_H

#include <stddef.h>

/* The longest E.164 form: '+' and 15 digits. */
#define RT_PHONE_E164_MAX 16

/* Writes the E.164 form of `input` into out and returns 0, or returns -1
 * with out set to "" and the reason in why (when why is not NULL).
 * default_country is the ISO 3166 alpha-2 code whose national numbers are
 * read ("UA" when NULL; any case). "ZZ" means no country: digits without
 * '+' are read as international with any assigned country code, for
 * sources that always send them so (Telegram's own contact). A default
 * country outside the table still reads '+' and 00 forms; its national
 * numbers are refused with a reason. */
int rt_phone_normalize (const char *input, const char *default_country,
                        char out[RT_PHONE_E164_MAX + 1], char *why, size_t whylen);

#endif
