// failure_excerpt: the lines of a failed command's output that say why.
#include <catch2/catch.hpp>

#include "worker-agent/failure_excerpt.h"

using namespace polyphony;

TEST_CASE("a failure's excerpt quotes the lines around the first failing line, else the last lines") {
  struct Case {
    const char* what;
    std::string output;
    std::string excerpt;
    bool at_failure = true;
  };
  const std::vector<Case> cases{
      {"the demo's sh loop: the failing test, not the later one that passed",
       "ok tests/bye.test\nFAIL tests/greet.test: expected Hello, Ada!\nok tests/zed.test\n",
       "ok tests/bye.test\nFAIL tests/greet.test: expected Hello, Ada!\nok tests/zed.test"},
      {"TAP: the first not ok, two lines before and three after",
       "1..6\nok 1 a\nok 2 b\nok 3 c\nnot ok 4 d\n# got 3\n# want 4\nok 5 e\nok 6 f\n",
       "ok 2 b\nok 3 c\nnot ok 4 d\n# got 3\n# want 4\nok 5 e"},
      {"pytest: FAILED before the summary",
       "test_a.py::test_one PASSED\ntest_a.py::test_two FAILED\n\n=== 1 failed, 1 passed ===\n",
       "test_a.py::test_one PASSED\ntest_a.py::test_two FAILED\n=== 1 failed, 1 passed ==="},
      {"a compiler error, then make's own",
       "cc -c a.c\na.c:3:1: error: expected ';'\n    3 | }\nmake: *** [Makefile:2: a.o] Error 1\n",
       "cc -c a.c\na.c:3:1: error: expected ';'\n    3 | }\nmake: *** [Makefile:2: a.o] Error 1"},
      {"a Rust panic", "running 2 tests\ntest a ... ok\nthread 'b' panicked at src/lib.rs:9:5\n",
       "running 2 tests\ntest a ... ok\nthread 'b' panicked at src/lib.rs:9:5"},
      {"a Python traceback, its first line",
       "x\ny\nz\nTraceback (most recent call last):\n  File \"t.py\", line 1\nValueError: no\n",
       "y\nz\nTraceback (most recent call last):\n  File \"t.py\", line 1\nValueError: no"},
      {"an assertion", "run\nt: t.c:4: main: Assertion `x == 1' failed.\nAborted\n",
       "run\nt: t.c:4: main: Assertion `x == 1' failed.\nAborted"},
      {"no failing line: the last six non-blank lines", "1\n2\n3\n4\n\n5\n6\n7\n8\n", "3\n4\n5\n6\n7\n8", false},
      {"carriage returns and blank lines are dropped", "ok a\r\n\r\n  \nERROR b\r\n", "ok a\nERROR b"},
      {"lowercase words that merely mention failure do not count", "0 failed\nall errors fixed\ndone\n",
       "0 failed\nall errors fixed\ndone", false},
      {"the demo's loop without a FAIL line: its end, said to be the end", "ok tests/bye.test\n", "ok tests/bye.test",
       false},
      {"no output at all", "\n\n", "", false},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    const FailureExcerpt e = failure_excerpt(c.output);
    CHECK(e.text == c.excerpt);
    CHECK(e.at_failure == c.at_failure);
  }
}

TEST_CASE("a long failure excerpt drops the context before the failing line first") {
  const std::string long_line(300, 'x');
  const std::string output = long_line + "\n" + long_line + "\n" + long_line + "\nFAIL here\nafter\n";
  const std::string excerpt = failure_excerpt(output).text;
  CHECK(excerpt.size() <= 600);
  // Three 200-byte lines (cut from 300) and the rest do not fit in 600: the first goes.
  CHECK(excerpt == std::string(200, 'x') + "\n" + std::string(200, 'x') + "\nFAIL here\nafter");
  CHECK(failure_excerpt("FAIL " + std::string(1000, 'y') + "\n", 2, 3, 100).text.size() == 100);
}
