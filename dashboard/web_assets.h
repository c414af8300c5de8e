// The dashboard's page, script and style sheet, embedded at build time from dashboard/web/
// (embed_web.cmake): the binary needs no file beside it.
#pragma once

#include <string_view>

namespace polyphony::dashboard {

extern const std::string_view kIndexHtml;
extern const std::string_view kAppJs;
extern const std::string_view kStyleCss;

}  // namespace polyphony::dashboard
