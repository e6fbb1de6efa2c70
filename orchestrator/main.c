/* main.c - tandem-orchestrator: owns threads, turns, auth and the MCP manager; serves the client API. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "version.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: tandem-orchestrator [--help] [--version]\n"
		     "owns threads, turns, auth and the MCP manager; serves the client API.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h': usage(stdout); return 0;
		case 'V': printf("tandem-orchestrator %s\n", TANDEM_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	usage(stderr);
	return 2;
}
