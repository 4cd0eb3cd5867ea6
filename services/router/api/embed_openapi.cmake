# Script mode helper of routerd's build: writes OUT, a C file holding the
# bytes of IN (the OpenAPI document) as api_openapi_json, so the binary
# serves the document the repository holds without reading any file.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* Generated from services/router/api/openapi.json; do not edit. */\n#include \"api.h\"\n\nconst char api_openapi_json[] = {${bytes} 0x00};\nconst size_t api_openapi_json_len = ${len};\n")
