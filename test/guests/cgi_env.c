/* CGI program (no SDK): reports the CGI meta-variables and the body it got, sets headers. */
#include <stdio.h>
#include <stdlib.h>

static const char *env(const char *name) { const char *v = getenv(name); return v ? v : "(unset)"; }

int main(void) {
    printf("Status: 202 Accepted\r\nContent-Type: text/plain\r\nX-Cgi-Method: %s\r\n\r\n", env("REQUEST_METHOD"));
    const char *names[] = {"REQUEST_METHOD", "QUERY_STRING", "PATH_INFO", "SCRIPT_NAME", "CONTENT_TYPE", "CONTENT_LENGTH",
                           "SERVER_PROTOCOL", "GATEWAY_INTERFACE", "HTTP_X_TEST", "HTTP_USER_AGENT"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) printf("%s=%s\n", names[i], env(names[i]));
    printf("body=");
    int c;
    while ((c = getchar()) != EOF) putchar(c);
    printf("\n");
    return 0;
}
