// The command-line rules every program shares, through a CommandLine defined here: repeated
// flags, --flag=value and --flag value, `--` ending the flags, and usage errors that name the
// flag or argument at fault and exit 2.
#include <catch2/catch.hpp>

#include <iostream>
#include <sstream>

#include "cli/cli.h"
#include "cli/command_line.h"

using namespace polyphony::cli;

namespace {

struct Outcome {
  int exit_code = -1;
  std::string out;
  std::string err;
  Args args;  // what the handler got, when it ran
  std::string ran;
};

// A program `demo` with a command `put TITLE` and a group `box` holding `open`.
Outcome run_demo(const std::vector<std::string>& argv) {
  Outcome o;
  CommandLine line("demo", "a demo", [&](const Args& a) {
    o.ran = "demo";
    o.args = a;
    return kExitOk;
  });
  Command root = line.root();
  root.add("put", "put a thing",
           [&](const Args& a) {
             o.ran = "put";
             o.args = a;
             return kExitOk;
           })
      .positionals("TITLE", "the title")
      .option("--repo", "R", "the repo")
      .repeatable("--label", "L", "a label")
      .flag("-f,--follow", "follow");
  root.add("box", "a group", nullptr).add("open", "open it", [&](const Args& a) {
    o.ran = "box open";
    o.args = a;
    return kExitOk;
  });
  std::ostringstream out, err;
  auto* old_out = std::cout.rdbuf(out.rdbuf());
  auto* old_err = std::cerr.rdbuf(err.rdbuf());
  o.exit_code = line.run(argv);
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  o.out = out.str();
  o.err = err.str();
  return o;
}

}  // namespace

TEST_CASE("flags are read as --flag value and --flag=value, repeatable ones keep every value in order") {
  auto o = run_demo({"put", "a title", "--repo=/r", "--label", "x", "--label=y", "-f"});
  REQUIRE(o.exit_code == 0);
  CHECK(o.ran == "put");
  CHECK(o.args.positional == std::vector<std::string>{"a title"});
  CHECK(o.args.get("repo") == "/r");
  CHECK(o.args.all("label") == std::vector<std::string>{"x", "y"});
  CHECK(o.args.has("follow"));
  CHECK(run_demo({"put", "t", "--follow"}).args.has("follow"));
  CHECK(run_demo({"put", "t", "--repo", ""}).args.values.at("repo") == std::vector<std::string>{""});
}

TEST_CASE("a double dash ends the flags: what follows is positional, even when it starts with - or names a command") {
  auto o = run_demo({"put", "--repo", "/r", "--", "-weird", "--label", "box"});
  REQUIRE(o.exit_code == 0);
  CHECK(o.args.positional == std::vector<std::string>{"-weird", "--label", "box"});
  CHECK(o.args.all("label").empty());
  auto sibling = run_demo({"put", "box"});
  CHECK(sibling.ran == "put");
  CHECK(sibling.args.positional == std::vector<std::string>{"box"});
}

TEST_CASE("a usage error names the flag or argument at fault on stderr and exits 2") {
  struct Case {
    std::vector<std::string> argv;
    std::string says;
  };
  const std::vector<Case> cases{
      {{"put", "t", "--repo"}, "demo: --repo: --repo needs a value"},
      {{"put", "t", "--repo", "a", "--repo", "b"}, "demo: --repo: --repo given more than once"},
      {{"put", "t", "--follow=yes"}, "--follow takes no value"},
      {{"put", "t", "--colour", "red"},
       "demo: --colour: unknown option --colour (put takes: --repo, --label, --follow)"},
      {{"put", "t", "--colour=red"}, "unknown option --colour ("},
      {{"put", "-weird"}, "unknown option -weird"},
      {{"nope"}, "demo: unknown command 'nope' (demo takes: put, box)"},
      {{"box", "shut"}, "demo: box: unknown command 'shut' (box takes: open)"},
      {{"box"}, "demo: box: box takes a command: open"},
      {{"box", "open", "extra"}, "demo: box open: unexpected argument 'extra'"},
      {{"box", "open", "--", "-x"}, "demo: box open: unexpected argument '-x'"},
  };
  for (const auto& c : cases) {
    auto o = run_demo(c.argv);
    INFO(c.argv.front() << " ... " << c.argv.back() << ": " << o.err);
    CHECK(o.exit_code == kExitUsage);
    CHECK(o.ran.empty());
    CHECK(o.out.empty());
    CHECK_THAT(o.err, Catch::Contains(c.says));
  }
}

TEST_CASE("-h and --help print the help of the command named last on stdout and exit 0") {
  for (const std::string help : {"-h", "--help"}) {
    auto put = run_demo({"put", help});
    CHECK(put.exit_code == 0);
    CHECK(put.ran.empty());
    CHECK(put.err.empty());
    CHECK_THAT(put.out, Catch::Contains("demo put") && Catch::Contains("--repo R") && Catch::Contains("-f,--follow"));
    auto open = run_demo({"box", "open", help});
    CHECK(open.exit_code == 0);
    CHECK_THAT(open.out, Catch::Contains("demo box open"));
    auto top = run_demo({help});
    CHECK(top.exit_code == 0);
    CHECK_THAT(top.out, Catch::Contains("put") && Catch::Contains("put a thing") && Catch::Contains("box"));
  }
}
