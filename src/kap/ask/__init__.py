"""Ask Kap: answers from a project's own documents, with citations."""
