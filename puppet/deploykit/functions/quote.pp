# @summary A string as a YAML double-quoted scalar.
#
# @param text the string
# @return [String] the quoted scalar: `\` and `"` escaped, newline, tab and carriage return as
#   `\n`, `\t`, `\r`; other control characters are refused (no daemon setting takes them).
function deploykit::quote(String $text) >> String {
  if $text =~ /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/ {
    fail("deploykit: control character in a configuration value: ${text.regsubst(/[^ -~]/, '?', 'G')}")
  }
  $escapes = { '\\' => '\\\\', '"' => '\\"', "\n" => '\\n', "\t" => '\\t', "\r" => '\\r' }
  $escaped = $text.split('').map |$c| { $escapes[$c].lest || { $c } }.join('')
  "\"${escaped}\""
}
