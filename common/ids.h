// Task ids, branch names and other identifiers made safe from user text.
#pragma once

#include <string>
#include <string_view>

namespace polyphony {

// A new task id: 8 lowercase hex characters from a random source.
std::string new_task_id();

// True for ids made of [A-Za-z0-9_-], 1..64 characters.
bool is_valid_id(std::string_view id);

// A branch-name-safe slug of a title: lowercase ASCII letters and digits joined by single
// '-', at most `max_len` characters, never empty ("task"), never starting with '-' or '.'.
std::string slugify(std::string_view title, size_t max_len = 40);

// "polyphony/<id>-<slug>".
std::string task_branch(std::string_view task_id, std::string_view title);

// True when `name` is a valid git branch name (git check-ref-format rules).
bool is_valid_branch_name(std::string_view name);

// True when `text` is valid UTF-8.
bool is_valid_utf8(std::string_view text);

}  // namespace polyphony
