# @summary A string as a YAML scalar: plain when that is safe, else double-quoted.
#
# Plain only for words of `[A-Za-z0-9_./@%+=&~-]` that start with a letter or `/` and are not
# one of YAML's boolean or null words, so `future.git.commits` and `/etc/x/y` read as the
# original's files did, and anything else (`site-*`, `a: b`, `127.0.0.1:61613`) is quoted.
# Quoted: `\` and `"` escaped, newline, tab and carriage return as `\n`, `\t`, `\r`; other
# control characters are refused (no daemon setting takes them). A value from hiera can never
# start a new key, a comment or a document in the rendered file.
#
# @param text the string
# @return [String] the scalar
function deploykit::quote(String $text) >> String {
  if $text =~ /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/ {
    fail("deploykit: control character in a configuration value: ${text.regsubst(/[^ -~]/, '?', 'G')}")
  }
  if $text =~ /\A[A-Za-z\/][A-Za-z0-9_.\/@%+=&~-]*\z/ and
      $text.downcase !~ /\A(y|n|yes|no|on|off|true|false|null)\z/ {
    $text
  } else {
    # lint:ignore:double_quoted_strings ("\n" here is the control character itself)
    $escapes = { '\\' => '\\\\', '"' => '\\"', "\n" => '\\n', "\t" => '\\t', "\r" => '\\r' }
    # lint:endignore
    $escaped = $text.split('').map |$c| { $escapes[$c].lest || { $c } }.join('')
    "\"${escaped}\""
  }
}
