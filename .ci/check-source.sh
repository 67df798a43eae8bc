#!/usr/bin/env bash
# Source checks that need no build; .ci/test-all.sh runs this first. Exits non-zero on a finding.
#
# 1. No co_await result used directly as a condition. g++ 12.2 miscompiles a coroutine that
#    branches on `co_await` inside an `if`/`while` condition or a `?:` — `if (!co_await
#    ctx.sleep(ms)) co_return ...;` never resumes or dies of SIGILL — so the result goes into a
#    variable first:
#        const bool slept = co_await ctx.sleep(ms);
#        if (!slept) co_return ...;
#    Looked at: C/C++ files and the fenced code blocks of Markdown files, in core/, native_tests/,
#    examples/, bench/, fuzz/, docs/, wasm/, README.md (tracked and new files, node_modules and
#    build outputs left out), with comments and string literals blanked first, so prose that
#    describes the pitfall does not count.
set -euo pipefail
cd "$(dirname "$0")/.."

roots=(core native_tests examples bench fuzz docs wasm README.md)
if [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$PWD" ]; then
  list() { git ls-files --cached --others --exclude-standard -- "${roots[@]}"; }
else  # not a git checkout of its own (an exported tree): every file, minus dependencies and builds
  list() { find "${roots[@]}" \( -name node_modules -o -name build \) -prune -o -type f -print 2>/dev/null; }
fi
mapfile -t files < <(list | grep -E '\.(c|cc|cpp|cxx|h|hh|hpp|hxx|ipp|inl|md)$' | grep -v '/node_modules/' | sort -u)
existing=()
for f in "${files[@]}"; do [ -f "$f" ] && existing+=("$f"); done
[ "${#existing[@]}" -gt 0 ] || { echo "check-source: no file to check (run from the repository)" >&2; exit 1; }

perl -e '
  use strict; use warnings;
  my $found = 0;
  for my $file (@ARGV) {
    open(my $fh, "<", $file) or die "$file: $!";
    my @lines = <$fh>;
    close $fh;
    my $text;
    if ($file =~ /\.md$/) {
      # Only fenced code: everything else becomes blank lines (line numbers are kept).
      my $in = 0;
      $text = join "", map {
        if (/^\s*(```|~~~)/) { $in = !$in; "\n" } else { $in ? $_ : "\n" }
      } @lines;
    } else {
      $text = join "", @lines;
    }
    $text =~ s/(?<=[0-9a-fA-F])\x27(?=[0-9a-fA-F])//g;  # digit separators (60\x27000) are no quotes
    # Blank comments and string/char literals, keeping newlines (and so line numbers).
    $text =~ s{
        (//[^\n]*)
      | (/\*.*?\*/)
      | ("(?:[^"\\\n]|\\.)*")
      | (\x27(?:[^\x27\\\n]|\\.)*\x27)
    }{ my $m = $&; $m =~ s/[^\n]/ /g; $m }gsex;
    $text =~ s/\boperator\s*co_await\b/operator _________/g;  # declaring or calling the operator
    my @hits;
    # if/while/switch and its condition (balanced parentheses).
    while ($text =~ /\b(?:if|while|switch)\s*(?:constexpr\s*)?(?<p>\((?:[^()]++|(?&p))*\))/g) {
      my ($cond, $at) = ($+{p}, $-[0]);
      push @hits, $at if $cond =~ /\bco_await\b/;
    }
    # co_await <expr> ? a : b   (before the end of its statement)
    while ($text =~ /\bco_await\b[^;{}]*?\?[^;{}]*?:/g) {
      push @hits, $-[0];
    }
    my %seen;
    for my $at (sort { $a <=> $b } @hits) {
      my $line = 1 + (substr($text, 0, $at) =~ tr/\n//);
      next if $seen{$line}++;
      my $src = $lines[$line - 1]; $src =~ s/^\s+|\s+$//g;
      print STDERR "$file:$line: co_await result used as a condition: $src\n";
      $found++;
    }
  }
  if ($found) {
    print STDERR "check-source: $found co_await result(s) used directly as a condition; g++ 12.2 miscompiles\n",
      "this. Store the result first:  const bool slept = co_await ctx.sleep(ms); if (!slept) ...\n";
    exit 1;
  }
  printf "ok   no co_await result used directly as a condition (%d files)\n", scalar @ARGV;
' "${existing[@]}"
