// Typed, bounded access to the fields of one JSON object, for decoders of untrusted payloads.
// An absent or null field reads as the type's empty value; a field of the wrong type or over its
// bound records the first error as "<prefix><field>: <what>" (e.g. "data.repo: not a string") and
// reads as empty, so a decoder reads every field and checks `error` once at the end.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace bus {

struct json_fields {
    static constexpr std::size_t max_len = 4096;    // one string field, unless the call says otherwise
    static constexpr std::size_t max_items = 10000; // one list or map

    const nlohmann::json& j;
    std::string& error;
    std::string prefix;

    // Records "<prefix><field>: <what>" unless an earlier error is already recorded; false.
    bool fail(std::string_view field, std::string_view what);
    // The field, or nullptr when it is absent or null.
    const nlohmann::json* find(std::string_view field) const;

    std::string str(std::string_view field, std::size_t limit = max_len);
    // As str(), and an absent or null field is an error ("missing").
    std::string required(std::string_view field, std::size_t limit = max_len);
    std::int64_t integer(std::string_view field);
    double number(std::string_view field);
    bool boolean(std::string_view field, bool absent = false);
    std::vector<std::string> strings(std::string_view field, std::size_t items = max_items);
    std::map<std::string, std::string> string_map(std::string_view field);
    // The field as an object (an empty object when absent).
    nlohmann::json object(std::string_view field);
    // A reader of `element` (an item of `field`) whose errors read "<prefix><field>[].<name>".
    json_fields item(const nlohmann::json& element, std::string_view field) const;
    // The list `field` of at most `items` objects, each given to `each` as an item() reader; an
    // absent or null field is an empty list. Anything else records "<field>: not a list of <what>"
    // and calls `each` for none of them. False when the field failed.
    bool objects(std::string_view field, std::size_t items, std::string_view what,
                 const std::function<void(json_fields&)>& each);
};

} // namespace bus
