#include "bus/json_fields.hpp"

#include <nlohmann/json.hpp>

namespace bus {

using nlohmann::json;

bool json_fields::fail(std::string_view field, std::string_view what)
{
    if (error.empty()) error = prefix + std::string(field) + ": " + std::string(what);
    return false;
}

const json* json_fields::find(std::string_view field) const
{
    auto it = j.find(field);
    if (it == j.end() || it->is_null()) return nullptr;
    return &*it;
}

std::string json_fields::str(std::string_view field, std::size_t limit)
{
    auto* v = find(field);
    if (!v) return {};
    if (!v->is_string()) {
        fail(field, "not a string");
        return {};
    }
    const auto& s = v->get_ref<const std::string&>();
    if (s.size() > limit) {
        fail(field, "too long");
        return {};
    }
    return s;
}

std::string json_fields::required(std::string_view field, std::size_t limit)
{
    if (!find(field)) {
        fail(field, "missing");
        return {};
    }
    return str(field, limit);
}

std::int64_t json_fields::integer(std::string_view field)
{
    auto* v = find(field);
    if (!v) return 0;
    if (!v->is_number_integer()) {
        fail(field, "not an integer");
        return 0;
    }
    return v->get<std::int64_t>();
}

double json_fields::number(std::string_view field)
{
    auto* v = find(field);
    if (!v) return 0;
    if (!v->is_number()) {
        fail(field, "not a number");
        return 0;
    }
    return v->get<double>();
}

bool json_fields::boolean(std::string_view field, bool absent)
{
    auto* v = find(field);
    if (!v) return absent;
    if (!v->is_boolean()) {
        fail(field, "not a boolean");
        return absent;
    }
    return v->get<bool>();
}

std::vector<std::string> json_fields::strings(std::string_view field, std::size_t items)
{
    std::vector<std::string> out;
    auto* v = find(field);
    if (!v) return out;
    if (!v->is_array() || v->size() > items) {
        fail(field, "not a list of strings");
        return out;
    }
    for (const auto& x : *v) {
        if (!x.is_string() || x.get_ref<const std::string&>().size() > max_len) {
            fail(field, "not a list of strings");
            return {};
        }
        out.push_back(x.get<std::string>());
    }
    return out;
}

bool json_fields::objects(std::string_view field, std::size_t items, std::string_view what,
                          const std::function<void(json_fields&)>& each)
{
    auto* v = find(field);
    if (!v) return true;
    bool ok = v->is_array() && v->size() <= items;
    for (std::size_t i = 0; ok && i < v->size(); ++i) ok = (*v)[i].is_object();
    if (!ok) return fail(field, "not a list of " + std::string(what));
    for (const auto& x : *v) {
        auto r = item(x, field);
        each(r);
    }
    return true;
}

std::map<std::string, std::string> json_fields::string_map(std::string_view field)
{
    std::map<std::string, std::string> out;
    auto* v = find(field);
    if (!v) return out;
    if (!v->is_object() || v->size() > max_items) {
        fail(field, "not an object of strings");
        return out;
    }
    for (const auto& [k, x] : v->items()) {
        if (!x.is_string() || k.size() > max_len || x.get_ref<const std::string&>().size() > max_len) {
            fail(field, "not an object of strings");
            return {};
        }
        out[k] = x.get<std::string>();
    }
    return out;
}

json json_fields::object(std::string_view field)
{
    auto* v = find(field);
    if (!v) return json::object();
    if (!v->is_object()) {
        fail(field, "not an object");
        return json::object();
    }
    return *v;
}

json_fields json_fields::item(const json& element, std::string_view field) const
{
    return json_fields{element, error, prefix + std::string(field) + "[]."};
}

} // namespace bus
