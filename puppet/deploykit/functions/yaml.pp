# @summary A value as YAML flow text (JSON-compatible), for the EPP templates.
#
# Strings are double-quoted with `\` and `"` escaped and control characters written as escapes,
# so a value from hiera can never start a new key, a comment or a document in the rendered file.
# Hashes keep their order (hiera's), so the output is stable from run to run.
#
# @param value the value to write
# @return [String] one line of YAML
function deploykit::yaml(Data $value) >> String {
  $value ? {
    Undef   => 'null',
    Boolean => String($value),
    Integer => String($value),
    Float   => String($value, '%p'),
    String  => deploykit::quote($value),
    Array   => "[${value.map |$v| { deploykit::yaml($v) }.join(', ')}]",
    Hash    => "{${value.map |$k, $v| { "${deploykit::quote(String($k))}: ${deploykit::yaml($v)}" }.join(', ')}}",
  }
}
