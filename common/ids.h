// Task ids, branch names and other identifiers made safe from user text.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.h"

namespace polyphony {

// A new task id: 8 lowercase hex characters from a random source.
std::string new_task_id();

// True for ids made of [A-Za-z0-9_-], 1..64 characters.
bool is_valid_id(std::string_view id);

// True when `id` may name a task: an id as is_valid_id says, so it is safe in paths, container
// names and labels. The one check of task ids (the protocol's decode and the worker's
// workspaces use it too).
bool is_valid_task_id(std::string_view id);

// ok, or a "usage" error (where: the id) saying which characters a task id may hold.
Status check_task_id(std::string_view id);

// A branch-name-safe slug of a title: lowercase ASCII letters and digits joined by single
// '-', at most `max_len` characters, never empty ("task"), never starting with '-' or '.'.
std::string slugify(std::string_view title, size_t max_len = 40);

// "polyphony/<id>-<slug>".
std::string task_branch(std::string_view task_id, std::string_view title);

// True when `name` is a valid git branch name (git check-ref-format rules).
bool is_valid_branch_name(std::string_view name);

// Length (1-4) of the well-formed UTF-8 sequence starting at text[i], or 0 when none starts
// there: no overlong forms, no UTF-16 surrogates, nothing above U+10FFFF (RFC 3629).
size_t utf8_sequence_at(std::string_view text, size_t i);

// Offset of the first byte that makes `text` ill-formed UTF-8, or std::string_view::npos.
size_t utf8_error_offset(std::string_view text);

// True when `text` is valid UTF-8.
bool is_valid_utf8(std::string_view text);

}  // namespace polyphony
