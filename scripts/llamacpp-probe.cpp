// Teacher-forced top-50 log-probabilities from llama.cpp, taken the way tests/data/goldens were:
// the prompt as one batch (ubatch 512), then one token per step; n_ctx 4096, f16 KV, 2 threads.
// usage: llamacpp-probe MODEL IDS_FILE FLASH_ATTN(-1 auto, 0 off, 1 on) [LORA_ADAPTER]
// IDS_FILE lines: "NAME p1,p2,...;g1,g2,..."; prints [{"name":..,"steps":[[[id,logprob],..],..]}].
#include "llama.h"
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

static std::vector<llama_token> parse_ids(const std::string & s) {
    std::vector<llama_token> v;
    std::stringstream ss(s);
    std::string t;
    while (std::getline(ss, t, ',')) {
        if (!t.empty()) v.push_back(std::stoi(t));
    }
    return v;
}

int main(int argc, char ** argv) {
    if (argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s MODEL IDS_FILE FLASH_ATTN [LORA_ADAPTER]\n", argv[0]);
        return 2;
    }
    llama_backend_init();
    llama_model * model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) return 1;
    llama_adapter_lora * lora = argc == 5 ? llama_adapter_lora_init(model, argv[4]) : nullptr;
    if (argc == 5 && !lora) return 1;
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    std::ifstream in(argv[2]);
    std::string line;
    std::vector<int> idx(n_vocab);
    printf("[");
    for (bool first = true; std::getline(in, line); first = false) {
        const size_t sp = line.find(' '), semi = line.find(';');
        std::vector<llama_token> prompt = parse_ids(line.substr(sp + 1, semi - sp - 1));
        std::vector<llama_token> gen = parse_ids(line.substr(semi + 1));
        llama_context_params cp = llama_context_default_params();
        cp.n_ctx = 4096;
        cp.n_batch = 2048;
        cp.n_ubatch = 512;
        cp.n_threads = cp.n_threads_batch = 2;
        cp.flash_attn_type = (llama_flash_attn_type) atoi(argv[3]);
        llama_context * ctx = llama_init_from_model(model, cp);
        float scale = 1.0f;
        if (lora && llama_set_adapters_lora(ctx, &lora, 1, &scale)) return 1;
        printf("%s{\"name\":\"%s\",\"steps\":[", first ? "" : ",\n", line.substr(0, sp).c_str());
        if (llama_decode(ctx, llama_batch_get_one(prompt.data(), prompt.size()))) return 1;
        for (size_t k = 0; k < gen.size(); k++) {
            const float * l = llama_get_logits_ith(ctx, -1);
            double mx = *std::max_element(l, l + n_vocab), s = 0;
            for (int i = 0; i < n_vocab; i++) s += exp(l[i] - mx);
            const double lse = mx + log(s);
            std::iota(idx.begin(), idx.end(), 0);
            std::partial_sort(idx.begin(), idx.begin() + 50, idx.end(), [&](int a, int b) { return l[a] > l[b]; });
            printf("%s[", k ? "," : "");
            for (int j = 0; j < 50; j++) printf("%s[%d,%.7f]", j ? "," : "", idx[j], l[idx[j]] - lse);
            printf("]");
            llama_token t = gen[k];
            if (k + 1 < gen.size() && llama_decode(ctx, llama_batch_get_one(&t, 1))) return 1;
        }
        printf("]}");
        llama_free(ctx);
    }
    printf("]\n");
    llama_model_free(model);
    return 0;
}
