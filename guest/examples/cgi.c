/* cgi: an ordinary C program that speaks CGI/1.1 — no SDK. It prints the CGI variables it got and
 * echoes the body from stdin. Each request runs it from its entry point in a fresh instance. */
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    const char *method = getenv("REQUEST_METHOD");
    const char *query = getenv("QUERY_STRING");
    const char *path = getenv("PATH_INFO");
    const char *agent = getenv("HTTP_USER_AGENT");
    const char *length = getenv("CONTENT_LENGTH");
    printf("Status: 200 OK\r\n");
    printf("Content-Type: text/plain\r\n");
    printf("X-Cgi: yes\r\n\r\n");
    printf("method=%s\npath=%s\nquery=%s\nuser-agent=%s\n", method ? method : "", path ? path : "",
           query ? query : "", agent ? agent : "");
    long n = length ? atol(length) : 0;
    printf("body=");
    for (long i = 0; i < n; i++) {
        int c = getchar();
        if (c == EOF) break;
        putchar(c);
    }
    printf("\n");
    return 0;
}
